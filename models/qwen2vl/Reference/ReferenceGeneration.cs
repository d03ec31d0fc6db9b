using Qwen2VL.Dsl;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Reference;

/// <summary>Greedy decoding result: the new ids [B, steps] and each step's last-position logits [steps, B, V].</summary>
public sealed record GenerationResult(long[] NewTokens, int Steps, double[] StepLogits);

public sealed partial class ReferenceModel
{
    /// <summary>
    /// Greedy generation by recomputation: every step runs the whole growing sequence (no KV cache), which is
    /// mathematically the cached decode. The prompt keeps its prefill M-RoPE positions; the token at index c ≥ S
    /// gets c + rope_delta on all three axes (spec §6.2) and attention mask 1. Vision inputs are encoded once.
    /// A row that emits <paramref name="eosTokenId"/> continues with <paramref name="padTokenId"/>; generation
    /// stops early when every row has finished.
    /// </summary>
    public GenerationResult Generate(long[] inputIds, long[]? attentionMask, int batch, int seq, int maxNewTokens,
        VisionInput? images = null, VisionInput? videos = null, long? eosTokenId = null, long? padTokenId = null)
    {
        var mask = attentionMask ?? Enumerable.Repeat(1L, batch * seq).ToArray();
        var promptEmbeds = Embed(inputIds, batch, seq,
            images is null ? null : EncodeVision(images).Embeds, videos is null ? null : EncodeVision(videos).Embeds);
        var (promptPos, deltas) = RopeIndex.Compute(inputIds, attentionMask, batch, seq,
            images?.Grids ?? [], videos?.Grids ?? [], TokenIds, Merge);

        int hidden = promptEmbeds.Shape[2], vocab = LmHead.Shape[0];
        var generated = new List<long[]>();     // per step: [B]
        var stepLogits = new List<double>();
        var finished = new bool[batch];
        for (int step = 0; step < maxNewTokens; step++)
        {
            int len = seq + step;
            var embeds = new double[batch * len * hidden];
            var pos = new long[3 * batch * len];
            var fullMask = new long[batch * len];
            for (int b = 0; b < batch; b++)
            {
                Array.Copy(promptEmbeds.Data, (long)b * seq * hidden, embeds, (long)b * len * hidden, (long)seq * hidden);
                for (int s = 0; s < len; s++)
                {
                    fullMask[b * len + s] = s < seq ? mask[b * seq + s] : 1;
                    for (int a = 0; a < 3; a++)
                        pos[(a * batch + b) * len + s] = s < seq ? promptPos[(a * batch + b) * seq + s] : RopeIndex.DecodePosition(s, deltas[b]);
                }
                for (int k = 0; k < step; k++)
                    Array.Copy(EmbedTokens.Data, generated[k][b] * hidden, embeds, ((long)b * len + seq + k) * hidden, hidden);
            }
            var (h, _) = Decode(new Tensor([batch, len, hidden], embeds), pos, fullMask, batch, len);
            var last = Reshape(Select(h[^1], 1, len - 1), batch, hidden);                              // [B, Hidden]
            var logits = Linear(last, LmHead);                                                         // [B, V]
            stepLogits.AddRange(logits.Data);

            var next = new long[batch];
            for (int b = 0; b < batch; b++)
                next[b] = finished[b] && padTokenId is { } pad ? pad : ArgMax(logits.Data.AsSpan(b * vocab, vocab));
            for (int b = 0; b < batch; b++)
                if (eosTokenId is { } eos && next[b] == eos) finished[b] = true;
            generated.Add(next);
            if (finished.All(f => f)) break;
        }

        int steps = generated.Count;
        var tokens = new long[batch * steps];
        for (int k = 0; k < steps; k++)
            for (int b = 0; b < batch; b++) tokens[b * steps + k] = generated[k][b];
        return new GenerationResult(tokens, steps, stepLogits.ToArray());
    }

    /// <summary>Index of the largest value; the first one on ties (as torch.argmax).</summary>
    private static long ArgMax(ReadOnlySpan<double> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++)
            if (row[i] > row[best]) best = i;
        return best;
    }
}
