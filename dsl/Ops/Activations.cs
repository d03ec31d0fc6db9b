namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>QuickGELU (CLIP / Qwen2-VL vision MLP): x · σ(1.702·x).</summary>
    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x / (1f + Exp(-1.702f * x))",
        Grad = "dx = dy * (1f / (1f + Exp(-1.702f * x))) * (1f + 1.702f * x * (1f - 1f / (1f + Exp(-1.702f * x))))")]
    public static Tensor QuickGelu(Tensor x) => Map(x, static v => v / (1.0 + Math.Exp(-1.702 * v)));

    /// <summary>Exact GELU (<c>nn.GELU()</c> default, not the tanh approximation): ½·x·(1 + erf(x/√2)).</summary>
    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "0.5f * x * (1f + Erf(x * 0.70710678118654752f))",
        Grad = "dx = dy * (0.5f * (1f + Erf(x * 0.70710678118654752f)) + x * 0.3989422804014327f * Exp(-0.5f * x * x))")]
    public static Tensor Gelu(Tensor x) => Map(x, static v => 0.5 * v * (1.0 + SpecialFunctions.Erf(v / Math.Sqrt(2.0))));

    /// <summary>SiLU (swish): x · σ(x).</summary>
    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x / (1f + Exp(-x))",
        Grad = "dx = dy * (1f / (1f + Exp(-x))) * (1f + x * (1f - 1f / (1f + Exp(-x))))")]
    public static Tensor Silu(Tensor x) => Map(x, static v => v / (1.0 + Math.Exp(-v)));

    /// <summary>Logistic sigmoid 1 / (1 + e^−x).</summary>
    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "1f / (1f + Exp(-x))",
        Grad = "dx = dy * (1f / (1f + Exp(-x))) * (1f - 1f / (1f + Exp(-x)))")]
    public static Tensor Sigmoid(Tensor x) => Map(x, static v => 1.0 / (1.0 + Math.Exp(-v)));
}
