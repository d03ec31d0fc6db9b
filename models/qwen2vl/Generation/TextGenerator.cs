using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>Generation settings: how many tokens at most, how to pick them, and which ids end a row.</summary>
public sealed record GenerationOptions(int MaxNewTokens, SamplingOptions Sampling, IReadOnlyList<long> EosTokenIds, long? PadTokenId);

/// <summary>The new ids [Batch, Steps] (row-major) and each step's last-position logits [Steps, Batch, Vocab].</summary>
public sealed record GenerationOutput(long[] NewTokens, int Batch, int Steps, float[] StepLogits);

/// <summary>
/// Autoregressive generation on the compiled model, by recomputation: the generated DecoderLayer has no KV cache
/// input yet (the DSL's CausalAttention takes the whole sequence), so every step runs the decoder over the whole
/// growing sequence and keeps the last position's logits. With causal attention that is the cached decode: the
/// prompt keeps its prefill M-RoPE positions, the token at index c ≥ S gets c + rope_delta on all three axes
/// (spec §6.2) and attention mask 1; the vision tower runs once, on the prompt.
/// A row that emits an EOS id is finished and continues with the pad id; generation stops when every row is.
/// </summary>
public static class TextGenerator
{
    public static GenerationOutput Generate(Qwen2VLModel model, ForwardInputs prompt, GenerationOptions options,
        Action<int, long[]>? onStep = null)
    {
        if (options.MaxNewTokens < 0)
            throw new ModelException($"the number of new tokens must be ≥ 0, got {options.MaxNewTokens}");
        var sampler = new TokenSampler(options.Sampling);
        var start = model.Embed(prompt);
        int batch = start.Batch, seq = start.Seq, hidden = model.Hidden, vocab = model.Vocab;
        long pad = options.PadTokenId ?? (options.EosTokenIds.Count > 0 ? options.EosTokenIds[0] : 0);

        var seen = Enumerable.Range(0, batch)
            .Select(b => new HashSet<long>(prompt.InputIds.Skip(b * seq).Take(seq))).ToArray();
        var generated = new List<long[]>();        // per step: [B]
        var newRows = new List<float[]>();          // per step: embeddings [B, Hidden] of that step's tokens
        var stepLogits = new List<float>();
        var finished = new bool[batch];
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            var (x, pos, mask) = Extend(start, newRows, hidden);
            var logits = model.LastPositionLogits(x, pos, mask, batch, seq + step);                 // [B, V]
            stepLogits.AddRange(logits);

            var next = new long[batch];
            for (int b = 0; b < batch; b++)
            {
                next[b] = finished[b] ? pad : sampler.Next(logits.AsSpan(b * vocab, vocab), seen[b]);
                seen[b].Add(next[b]);
                if (options.EosTokenIds.Contains(next[b])) finished[b] = true;
            }
            generated.Add(next);
            onStep?.Invoke(step, next);
            if (finished.All(f => f)) break;
            if (step + 1 < options.MaxNewTokens) newRows.Add(model.EmbedTokens(next, batch, 1));
        }

        int steps = generated.Count;
        var tokens = new long[batch * steps];
        for (int k = 0; k < steps; k++)
            for (int b = 0; b < batch; b++) tokens[b * steps + k] = generated[k][b];
        return new GenerationOutput(tokens, batch, steps, stepLogits.ToArray());
    }

    /// <summary>
    /// The prompt followed by the generated tokens so far: embeddings [B, S + n, Hidden], positions [3, B, S + n]
    /// and mask [B, S + n].
    /// </summary>
    public static (float[] Embeddings, long[] Positions, long[] Mask) Extend(EmbeddedBatch prompt, IReadOnlyList<float[]> newRows, int hidden)
    {
        int batch = prompt.Batch, seq = prompt.Seq, len = seq + newRows.Count;
        var x = new float[(long)batch * len * hidden];
        var pos = new long[3L * batch * len];
        var mask = new long[(long)batch * len];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(prompt.Embeddings, (long)b * seq * hidden, x, (long)b * len * hidden, (long)seq * hidden);
            for (int k = 0; k < newRows.Count; k++)
                Array.Copy(newRows[k], (long)b * hidden, x, ((long)b * len + seq + k) * hidden, hidden);
            for (int s = 0; s < len; s++)
            {
                mask[b * len + s] = s < seq ? prompt.AttentionMask[b * seq + s] : 1;
                for (int a = 0; a < 3; a++)
                    pos[(a * batch + b) * len + s] = s < seq
                        ? prompt.PositionIds[(a * batch + b) * seq + s]
                        : RopeIndex.DecodePosition(s, prompt.RopeDeltas[b]);
            }
        }
        return (x, pos, mask);
    }
}
