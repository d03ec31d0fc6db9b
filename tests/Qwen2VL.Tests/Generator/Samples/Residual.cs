using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Tests.Generator.Samples;

/// <summary>Sample: a norm that also computes and writes the residual sum before it; a linear with an epilogue.</summary>
[Module]
public partial class Residual
{
    [Dim("hidden")] public int Hidden;
    [Param("norm.weight", "Hidden")] public Tensor NormW = null!;
    [Param("ln.weight", "Hidden")] public Tensor LnW = null!;
    [Param("ln.bias", "Hidden")] public Tensor LnB = null!;
    [Param("proj.weight", "Hidden", "Hidden")] public Tensor ProjW = null!;

    public Tensor Forward([Shape("T", "Hidden")] Tensor x, [Shape("T", "Hidden")] Tensor update)
    {
        var s = x + update;                                   // the residual stream…
        var n = RmsNorm(s, NormW, 1e-6f);                     // …summed and normalised by one kernel
        var m = LayerNorm(Silu(Linear(n, ProjW)), LnW, LnB, 1e-5f);
        return m + s;
    }
}
