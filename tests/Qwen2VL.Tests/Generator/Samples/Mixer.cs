using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Tests.Generator.Samples;

/// <summary>Sample: movement ops (split/merge heads views, transpose, select, concat), softmax and an embedding gather.</summary>
[Module]
public partial class Mixer
{
    [Dim("heads")] public int Heads;
    [Dim("width")] public int Width;
    [Dim("vocab")] public int Vocab;
    [Dim] public int HeadDim => Width / Heads;
    [Param("embed", "Vocab", "Width")] public Tensor Embed = null!;

    public Tensor Forward([Shape("T", "Width")] Tensor x, [Shape("T", DType = DType.I64)] Tensor ids)
    {
        var h = Transpose(SplitHeads(x + Embedding(ids, Embed), Heads), 0, 1);   // [Heads, T, HeadDim]
        var p = Softmax(h);                                                     // over HeadDim
        var back = MergeHeads(Transpose(p, 0, 1));                              // [T, Width]
        var first = Select(SplitHeads(back, Heads), 1, 0);                      // [T, HeadDim]
        return Concat(back, first, 1);                                          // [T, Width + HeadDim]
    }
}
