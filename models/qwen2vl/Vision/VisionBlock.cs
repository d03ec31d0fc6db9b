using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Vision;

/// <summary>
/// One ViT block (spec §5.5): pre-norm bidirectional attention within each image / frame pair, then a
/// QuickGELU MLP, with a residual around each. Checkpoint prefix: <c>visual.blocks.{i}.</c>
/// </summary>
[Module(TensorParallel = new[] { 2, 4, 8 })]
public partial class VisionBlock
{
    [Dim("vision_config.embed_dim", Default = 1280)] public int Embed;
    [Dim("vision_config.num_heads", Default = 16)] public int Heads;
    [Dim("vision_config.mlp_ratio", Default = 4)] public int MlpRatio;
    [Dim] public int HeadDim => Embed / Heads;
    [Dim] public int Mlp => Embed * MlpRatio;

    [Param("norm1.weight", "Embed")] public Tensor Norm1W = null!;
    [Param("norm1.bias", "Embed")] public Tensor Norm1B = null!;
    [Param("attn.qkv.weight", "3*Embed", "Embed", Shard = Shard.Column, ShardGroups = "Heads")] public Tensor QkvW = null!;
    [Param("attn.qkv.bias", "3*Embed", Shard = Shard.Column, ShardGroups = "Heads")] public Tensor QkvB = null!;
    [Param("attn.proj.weight", "Embed", "Embed", Shard = Shard.Row, ShardGroups = "Heads")] public Tensor ProjW = null!;
    [Param("attn.proj.bias", "Embed")] public Tensor ProjB = null!;
    [Param("norm2.weight", "Embed")] public Tensor Norm2W = null!;
    [Param("norm2.bias", "Embed")] public Tensor Norm2B = null!;
    [Param("mlp.fc1.weight", "Mlp", "Embed", Shard = Shard.Column)] public Tensor Fc1W = null!;
    [Param("mlp.fc1.bias", "Mlp", Shard = Shard.Column)] public Tensor Fc1B = null!;
    [Param("mlp.fc2.weight", "Embed", "Mlp", Shard = Shard.Row)] public Tensor Fc2W = null!;
    [Param("mlp.fc2.bias", "Embed")] public Tensor Fc2B = null!;

    public Tensor Forward(
        [Shape("N", "Embed")] Tensor x,
        [Shape("N", "2", DType = DType.I64)] Tensor pos,
        [Shape("G", DType = DType.I64)] Tensor cuSeqlens)
    {
        var h = LayerNorm(x, Norm1W, Norm1B, 1e-6f);                          // [N, Embed]
        var qkv = Reshape(Linear(h, QkvW, QkvB), -1, 3, Heads, HeadDim);      // [N, 3, Heads, HeadDim]
        var q = VisionRotary(Select(qkv, 1, 0), pos, 10000f);                 // [N, Heads, HeadDim]
        var k = VisionRotary(Select(qkv, 1, 1), pos, 10000f);                 // [N, Heads, HeadDim]
        var v = Select(qkv, 1, 2);                                            // [N, Heads, HeadDim]
        var o = Attention(q, k, v, cuSeqlens);                                // [N, Heads, HeadDim]
        x = x + Linear(Reshape(o, -1, Embed), ProjW, ProjB);                  // [N, Embed]
        var m = QuickGelu(Linear(LayerNorm(x, Norm2W, Norm2B, 1e-6f), Fc1W, Fc1B)); // [N, Mlp]
        return x + Linear(m, Fc2W, Fc2B);                                     // [N, Embed]
    }
}
