using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Vision;

/// <summary>
/// Patch merger (spec §5.6): LayerNorm each patch, concatenate the 4 patches of each 2×2 window (they are
/// consecutive rows, §3.4) into one vector, then a GELU MLP to the LLM width. Checkpoint prefix: <c>visual.merger.</c>
/// </summary>
[Module]
public partial class PatchMerger
{
    [Dim("vision_config.embed_dim", Default = 1280)] public int Embed;
    [Dim("vision_config.spatial_merge_size", Default = 2)] public int Merge;
    [Dim("vision_config.hidden_size", Default = 3584)] public int Hidden;
    [Dim] public int Window => Embed * Merge * Merge;

    [Param("ln_q.weight", "Embed")] public Tensor LnW = null!;
    [Param("ln_q.bias", "Embed")] public Tensor LnB = null!;
    [Param("mlp.0.weight", "Window", "Window")] public Tensor Mlp0W = null!;
    [Param("mlp.0.bias", "Window")] public Tensor Mlp0B = null!;
    [Param("mlp.2.weight", "Hidden", "Window")] public Tensor Mlp2W = null!;
    [Param("mlp.2.bias", "Hidden")] public Tensor Mlp2B = null!;

    public Tensor Forward([Shape("N", "Embed")] Tensor x)
    {
        var y = Reshape(LayerNorm(x, LnW, LnB, 1e-6f), -1, Window);          // [N/4, 4*Embed]
        var z = Gelu(Linear(y, Mlp0W, Mlp0B));                                // [N/4, 4*Embed]
        return Linear(z, Mlp2W, Mlp2B);                                       // [N/4, Hidden]
    }
}
