using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// Token embedding lookup (spec §7.1 step 1). Checkpoint prefix: <c>model.embed_tokens.</c>
/// The host checks every id against the vocabulary before the call, so a bad id is reported by position.
/// </summary>
[Module]
public partial class TokenEmbedding
{
    [Dim("vocab_size")] public int Vocab;
    [Dim("hidden_size")] public int Hidden;

    [Param("weight", "Vocab", "Hidden", Shard = Shard.Vocab)] public Tensor Table = null!;

    public Tensor Forward([Shape("B", "S", DType = DType.I64)] Tensor ids)
    {
        return Embedding(ids, Table);                                         // [B, S, Hidden]
    }
}

/// <summary>
/// The RMSNorm after the last decoder layer (spec §7.2). Checkpoint prefix: <c>model.norm.</c>
/// eps is config <c>rms_norm_eps</c>, like in <see cref="Decoder.DecoderLayer"/>.
/// </summary>
[Module]
public partial class FinalNorm
{
    [Dim("hidden_size")] public int Hidden;
    [Const("rms_norm_eps", Default = 1e-6)] public float Eps;

    [Param("weight", "Hidden")] public Tensor W = null!;

    public Tensor Forward([Shape("B", "S", "Hidden")] Tensor x)
    {
        return RmsNorm(x, W, Eps);                                             // [B, S, Hidden]
    }
}

/// <summary>
/// The output projection to vocabulary logits (spec §7.2). Checkpoint prefix: <c>lm_head.</c>, or
/// <c>model.embed_tokens.</c> when the head is tied to the embedding table (2B, §2.2): both store <c>.weight</c> [V, H].
/// </summary>
[Module]
public partial class LmHead
{
    [Dim("vocab_size")] public int Vocab;
    [Dim("hidden_size")] public int Hidden;

    [Param("weight", "Vocab", "Hidden", Shard = Shard.Vocab)] public Tensor W = null!;

    public Tensor Forward([Shape("T", "Hidden")] Tensor x)
    {
        return Linear(x, W);                                                  // [T, Vocab]
    }
}
