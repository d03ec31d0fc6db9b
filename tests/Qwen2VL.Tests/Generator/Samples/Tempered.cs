using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Tests.Generator.Samples;

/// <summary>
/// Sample: float constants from the config. <c>Eps</c> reaches the norm kernel as its eps argument; <c>Temperature</c>
/// (required) and <c>Mix</c> (defaulted) reach one elementwise kernel as arguments, read by several of its ops.
/// </summary>
[Module]
public partial class Tempered
{
    [Dim("width")] public int Width;
    [Const("norm_eps", Default = 1e-6)] public float Eps;
    [Const("temperature")] public float Temperature;
    [Const("mix", Default = 0.25)] public float Mix;
    [Param("norm.weight", "Width")] public Tensor NormW = null!;

    public Tensor Forward([Shape("N", "Width")] Tensor x)
    {
        var n = RmsNorm(x, NormW, Eps);                                       // [N, Width]
        return Scale(Silu(Scale(n, Temperature)), Mix) + Scale(x, Temperature); // [N, Width]
    }
}
