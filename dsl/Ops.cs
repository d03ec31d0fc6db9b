namespace Qwen2VL.Dsl;

// Op declarations: the generator reads the [Op] attribute (group, shape rule, scalar meaning); the body is the
// op's float64 reference meaning. TEMPORARY: bodies are filled in by the reference-ops work.
public static partial class Ops
{
    [Op(OpGroup.Matmul, "x:[*B,K]; w:[N,K]; b?:[N] -> [*B,N]")]
    public static Tensor Linear(Tensor x, Tensor w, Tensor? b = null) => throw new NotImplementedException();

    [Op(OpGroup.Norm, "x:[*B,D]; w:[D]; b:[D] -> [*B,D]")]
    public static Tensor LayerNorm(Tensor x, Tensor w, Tensor b, float eps) => throw new NotImplementedException();

    [Op(OpGroup.Norm, "x:[*B,D]; w:[D] -> [*B,D]")]
    public static Tensor RmsNorm(Tensor x, Tensor w, float eps) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "a:[*S]; b:[..S] -> [*S]", Scalar = "a + b")]
    public static Tensor Add(Tensor a, Tensor b) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "a:[*S]; b:[..S] -> [*S]", Scalar = "a * b")]
    public static Tensor Mul(Tensor a, Tensor b) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x * s")]
    public static Tensor Scale(Tensor x, float s) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x / (1f + Exp(-1.702f * x))")]
    public static Tensor QuickGelu(Tensor x) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "0.5f * x * (1f + Erf(x * 0.70710678118654752f))")]
    public static Tensor Gelu(Tensor x) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x / (1f + Exp(-x))")]
    public static Tensor Silu(Tensor x) => throw new NotImplementedException();

    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "1f / (1f + Exp(-x))")]
    public static Tensor Sigmoid(Tensor x) => throw new NotImplementedException();

    [Op(OpGroup.Reduce, "x:[*B,D] -> [*B,D]")]
    public static Tensor Softmax(Tensor x) => throw new NotImplementedException();

    [Op(OpGroup.Movement, "custom")]
    public static Tensor Reshape(Tensor x, params int[] shape) => throw new NotImplementedException();

    [Op(OpGroup.Movement, "custom")]
    public static Tensor Transpose(Tensor x, int axis0, int axis1) => throw new NotImplementedException();

    [Op(OpGroup.Movement, "custom")]
    public static Tensor Select(Tensor x, int axis, int index) => throw new NotImplementedException();

    [Op(OpGroup.Movement, "custom")]
    public static Tensor Concat(Tensor a, Tensor b, int axis) => throw new NotImplementedException();

    // Vision 2-D rotary: x [N,H,D]; pos [N,2] = (h, w) patch coordinates. inv_freq[k] = 1/theta^(2k/(D/2)), k < D/4.
    // Pair d with d + D/2 (rotate_half). d mod D/2 < D/4 uses h·inv_freq[d mod D/4], else w·inv_freq[d mod D/4].
    [Op(OpGroup.Rotary, "x:[N,H,D]; pos:[N,2]:i64 -> [N,H,D]")]
    public static Tensor VisionRotary(Tensor x, Tensor pos, float theta) => throw new NotImplementedException();

    // Decoder M-RoPE: x [B,S,H,D]; pos [3,B,S] (t,h,w). inv_freq[k] = 1/theta^(2k/D), k < D/2; frequency k uses
    // axis 0 for k < sT, axis 1 for k < sT+sH, axis 2 otherwise; rotate_half pairs d and d + D/2.
    [Op(OpGroup.Rotary, "x:[B,S,H,D]; pos:[3,B,S]:i64 -> [B,S,H,D]")]
    public static Tensor MRope(Tensor x, Tensor pos, float theta, int sectionT, int sectionH, int sectionW) => throw new NotImplementedException();

    // Bidirectional attention within segments [cu[i], cu[i+1]) (vision tower); scale 1/sqrt(D).
    [Op(OpGroup.Attention, "q:[N,H,D]; k:[N,H,D]; v:[N,H,D]; cuSeqlens:[G]:i64 -> [N,H,D]")]
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens) => throw new NotImplementedException();

    // Causal attention with grouped KV heads (query head h uses KV head h / (H/KV)); mask [B,S] = 1 for real
    // tokens, 0 for padding (padded keys are excluded; fully masked query rows give zeros). scale 1/sqrt(D).
    [Op(OpGroup.Attention, "q:[B,S,H,D]; k:[B,S,KV,D]; v:[B,S,KV,D]; mask:[B,S]:i64 -> [B,S,H,D]")]
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v, Tensor mask) => throw new NotImplementedException();
    // [*B, Heads*D] -> [*B, Heads, D]: splits the last axis into heads (a view).
    [Op(OpGroup.Movement, "custom")]
    public static Tensor SplitHeads(Tensor x, int heads) => throw new NotImplementedException();

    // [*B, Heads, D] -> [*B, Heads*D]: joins the last two axes (a view).
    [Op(OpGroup.Movement, "custom")]
    public static Tensor MergeHeads(Tensor x) => throw new NotImplementedException();

    // Row lookup: ids [*B] (i64) into table [V, H] -> [*B, H]. An id outside [0, V) is an error.
    [Op(OpGroup.Movement, "ids:[*B]:i64; table:[V,H] -> [*B,H]")]
    public static Tensor Embedding(Tensor ids, Tensor table) => throw new NotImplementedException();
}
