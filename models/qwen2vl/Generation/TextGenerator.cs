using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>Generation settings: how many tokens at most, how to pick them, and which ids end a row.</summary>
public sealed record GenerationOptions(int MaxNewTokens, SamplingOptions Sampling, IReadOnlyList<long> EosTokenIds, long? PadTokenId);

/// <summary>The new ids [Batch, Steps] (row-major) and each step's last-position logits [Steps, Batch, Vocab].</summary>
public sealed record GenerationOutput(long[] NewTokens, int Batch, int Steps, float[] StepLogits);

/// <summary>
/// Autoregressive generation on the compiled model with preallocated KV caches: the prompt runs once (prefill)
/// and each new token is one decode step over the cache. The prompt keeps its prefill M-RoPE positions; the token at
/// index c ≥ S gets c + rope_delta on all three axes (spec §6.2) and attention mask 1; the vision tower runs once.
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
        int batch = start.Batch, seq = start.Seq, vocab = model.Vocab;
        long pad = options.PadTokenId ?? (options.EosTokenIds.Count > 0 ? options.EosTokenIds[0] : 0);

        var seen = Enumerable.Range(0, batch)
            .Select(b => new HashSet<long>(prompt.InputIds.Skip(b * seq).Take(seq))).ToArray();
        var generated = new List<long[]>();        // per step: [B]
        var stepLogits = new List<float>();
        var finished = new bool[batch];
        using var cache = model.CreateCache(batch, seq + Math.Max(options.MaxNewTokens, 1));
        var logits = model.DecodeWithCache(cache, start.Embeddings, start.PositionIds, start.AttentionMask, seq);   // [B, V]
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
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
            if (finished.All(f => f) || step + 1 == options.MaxNewTokens) break;

            // Decode: the new token at cache position c = seq + step, M-RoPE position c + rope_delta on all axes.
            var ones = Enumerable.Repeat(1L, batch).ToArray();
            logits = model.DecodeWithCache(cache, next, DecodePositions(start, step), ones, 1);
        }

        int steps = generated.Count;
        var tokens = new long[batch * steps];
        for (int k = 0; k < steps; k++)
            for (int b = 0; b < batch; b++) tokens[b * steps + k] = generated[k][b];
        return new GenerationOutput(tokens, batch, steps, stepLogits.ToArray());
    }

    /// <summary>
    /// M-RoPE positions [3, B, 1] of the token generated at <paramref name="step"/>: its cache position is
    /// c = S + step and its position c + rope_delta on all three axes (spec §6.2).
    /// </summary>
    public static long[] DecodePositions(EmbeddedBatch prompt, int step)
    {
        int batch = prompt.Batch;
        var positions = new long[3 * batch];
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < batch; b++)
                positions[a * batch + b] = RopeIndex.DecodePosition(prompt.Seq + step, prompt.RopeDeltas[b]);
        return positions;
    }
}
