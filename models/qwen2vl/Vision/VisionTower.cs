using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Vision;

/// <summary>
/// The ViT (spec §5): patch embedding, <c>Depth</c> blocks with 2-D rotary attention inside each image / frame
/// pair, then the 2×2 patch merger. Checkpoint prefix: <c>visual.</c>
/// Inputs are the processor's patch rows (§3.4), each patch's (h, w) grid coordinates in the same row order,
/// and the attention segment bounds (one segment per image / frame pair, §5.4).
/// </summary>
[Module]
public partial class VisionTower
{
    [Dim("vision_config.embed_dim", Default = 1280)] public int Embed;
    [Dim("vision_config.depth", Default = 32)] public int Depth;
    [Dim("vision_config.in_channels", Default = 3)] public int Channels;
    [Dim("vision_config.temporal_patch_size", Default = 2)] public int TemporalPatch;
    [Dim("vision_config.patch_size", Default = 14)] public int Patch;
    [Dim] public int InDim => Channels * TemporalPatch * Patch * Patch;

    // Conv3d with kernel = stride = (Tp, P, P) and no bias: one [C, Tp, P, P] cube per patch row, so the conv is a
    // matmul with the kernel flattened to [Embed, C·Tp·P·P] (its flattening order is the row's column order, §3.4).
    [Param("patch_embed.proj.weight", "Embed", "Channels", "TemporalPatch", "Patch", "Patch")] public Tensor PatchW = null!;

    [Submodule("blocks", Count = "Depth")] public VisionBlock[] Blocks = null!;
    [Submodule("merger")] public PatchMerger Merger = null!;

    public Tensor Forward(
        [Shape("N", "InDim")] Tensor pixelValues,
        [Shape("N", "2", DType = DType.I64)] Tensor pos,
        [Shape("G", DType = DType.I64)] Tensor cuSeqlens)
    {
        var x = Linear(pixelValues, Reshape(PatchW, Embed, -1));             // [N, Embed]
        for (int i = 0; i < Blocks.Length; i++) x = Blocks[i].Forward(x, pos, cuSeqlens);   // [N, Embed]
        return Merger.Forward(x);                                             // [N/4, Hidden]
    }
}
