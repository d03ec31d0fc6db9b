using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Tests.Generator.Samples;

/// <summary>Sample: one elementwise kernel out of a chain with row-vector broadcasting.</summary>
[Module]
public partial class Gate
{
    [Dim("width")] public int Width;
    [Param("scale", "Width")] public Tensor ScaleW = null!;
    [Param("shift", "Width")] public Tensor Shift = null!;

    public Tensor Forward([Shape("N", "Width")] Tensor x, [Shape("N", "Width")] Tensor y)
    {
        var a = Gelu(x) * ScaleW + Shift;       // one kernel: Gelu, Mul (row-vector broadcast), Add
        return Scale(Sigmoid(a) * y, 0.5f);     // joins it: Sigmoid, Mul, Scale
    }
}
