using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Decoder;

/// <summary>
/// One Qwen2 decoder layer with M-RoPE (spec §7.2): pre-norm causal GQA attention, then a SwiGLU MLP, with a
/// residual around each. Checkpoint prefix: <c>model.layers.{i}.</c>
/// Float constants from the config: RMSNorm eps (<c>rms_norm_eps</c>, 1e-6 in every released size) and the M-RoPE
/// base (<c>rope_theta</c>, 1e6 in every release, §1.1); the kernels take both as arguments.
/// </summary>
[Module]
public partial class DecoderLayer
{
    [Dim("hidden_size")] public int Hidden;
    [Dim("num_attention_heads")] public int Heads;
    [Dim("num_key_value_heads")] public int KvHeads;
    [Dim("intermediate_size")] public int Intermediate;
    // M-RoPE sections over the HeadDim/2 frequencies: temporal, height, width (§6.3).
    [Dim("rope_scaling.mrope_section.0")] public int SectionT;
    [Dim("rope_scaling.mrope_section.1")] public int SectionH;
    [Dim("rope_scaling.mrope_section.2")] public int SectionW;
    [Const("rms_norm_eps", Default = 1e-6)] public float Eps;
    [Const("rope_theta", Default = 1e6)] public float RopeTheta;
    [Dim] public int HeadDim => Hidden / Heads;
    [Dim] public int KvDim => KvHeads * HeadDim;

    [Param("input_layernorm.weight", "Hidden")] public Tensor InputNormW = null!;
    [Param("self_attn.q_proj.weight", "Hidden", "Hidden", Shard = Shard.Column, ShardGroups = "Heads")] public Tensor QW = null!;
    [Param("self_attn.q_proj.bias", "Hidden", Shard = Shard.Column, ShardGroups = "Heads")] public Tensor QB = null!;
    [Param("self_attn.k_proj.weight", "KvDim", "Hidden", Shard = Shard.Column, ShardGroups = "KvHeads")] public Tensor KW = null!;
    [Param("self_attn.k_proj.bias", "KvDim", Shard = Shard.Column, ShardGroups = "KvHeads")] public Tensor KB = null!;
    [Param("self_attn.v_proj.weight", "KvDim", "Hidden", Shard = Shard.Column, ShardGroups = "KvHeads")] public Tensor VW = null!;
    [Param("self_attn.v_proj.bias", "KvDim", Shard = Shard.Column, ShardGroups = "KvHeads")] public Tensor VB = null!;
    [Param("self_attn.o_proj.weight", "Hidden", "Hidden", Shard = Shard.Row, ShardGroups = "Heads")] public Tensor OW = null!;
    [Param("post_attention_layernorm.weight", "Hidden")] public Tensor PostNormW = null!;
    [Param("mlp.gate_proj.weight", "Intermediate", "Hidden", Shard = Shard.Column)] public Tensor GateW = null!;
    [Param("mlp.up_proj.weight", "Intermediate", "Hidden", Shard = Shard.Column)] public Tensor UpW = null!;
    [Param("mlp.down_proj.weight", "Hidden", "Intermediate", Shard = Shard.Row)] public Tensor DownW = null!;

    public Tensor Forward(
        [Shape("B", "S", "Hidden")] Tensor x,
        [Shape("3", "B", "S", DType = DType.I64)] Tensor pos,
        [Shape("B", "S", DType = DType.I64)] Tensor mask)
    {
        var h = RmsNorm(x, InputNormW, Eps);                                                           // [B, S, Hidden]
        var q = MRope(SplitHeads(Linear(h, QW, QB), Heads), pos, RopeTheta, SectionT, SectionH, SectionW);    // [B, S, Heads, HeadDim]
        var k = MRope(SplitHeads(Linear(h, KW, KB), KvHeads), pos, RopeTheta, SectionT, SectionH, SectionW);  // [B, S, KvHeads, HeadDim]
        var v = SplitHeads(Linear(h, VW, VB), KvHeads);                                          // [B, S, KvHeads, HeadDim]
        var o = CausalAttention(q, k, v, mask);                                                  // [B, S, Heads, HeadDim]
        x = x + Linear(MergeHeads(o), OW);                                                       // [B, S, Hidden]
        var g = RmsNorm(x, PostNormW, Eps);                                                            // [B, S, Hidden]
        var m = Silu(Linear(g, GateW)) * Linear(g, UpW);                                         // [B, S, Intermediate]
        return x + Linear(m, DownW);                                                             // [B, S, Hidden]
    }
}
