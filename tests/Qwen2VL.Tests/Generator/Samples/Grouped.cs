using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Tests.Generator.Samples;

/// <summary>
/// Sample: a value sized by a product that is divided afterwards (the decoder's KvDim = KvHeads·Hidden/Heads), so the
/// runner's 32-bit size arithmetic can overflow where the value itself is small (SampleKernelTests runs it at such dims).
/// </summary>
[Module]
public partial class Grouped
{
    [Dim("hidden")] public int Hidden;
    [Dim("heads")] public int Heads;
    [Dim("kv_heads")] public int KvHeads;
    [Dim] public int HeadDim => Hidden / Heads;
    [Dim] public int KvDim => KvHeads * HeadDim;

    public Tensor Forward([Shape("N", "KvDim")] Tensor x)
    {
        return Silu(x) * x;                     // one elementwise kernel over N·KvHeads·Hidden/Heads elements
    }
}
