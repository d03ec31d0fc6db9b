using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The small host-side steps between the generated runners, on CPU arrays for now: input checks, the masked scatter
/// of vision embeddings into the token embeddings (spec §7.1) and the shifted cross-entropy loss (§9.1). Each touches
/// only [B, S]-sized data (or [B, S, Hidden]), so the round trip to the host is cheap next to the layers.
/// </summary>
public static class HostOps
{
    public const long IgnoreIndex = -100;

    /// <summary>Checks that every id lies in [0, vocab); the message names the first offender and its position.</summary>
    public static void CheckIds(long[] ids, int batch, int seq, int vocab, string what = "input_ids")
    {
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] < 0 || ids[i] >= vocab)
                throw new ModelException($"{what}[{i / seq}, {i % seq}] = {ids[i]} is outside the vocabulary [0, {vocab})");
    }

    /// <summary>Checks that a [B, S] mask holds only 0 and 1.</summary>
    public static void CheckMask(long[] mask, int seq)
    {
        for (int i = 0; i < mask.Length; i++)
            if (mask[i] is not (0 or 1))
                throw new ModelException($"attention_mask[{i / seq}, {i % seq}] = {mask[i]}; only 0 and 1 are allowed");
    }

    /// <summary>
    /// Masked scatter: the rows of <paramref name="x"/> [B·S, hidden] whose id is <paramref name="tokenId"/> are
    /// replaced, in order over the flattened ids, by the rows of <paramref name="rows"/> [count, hidden].
    /// </summary>
    public static void Scatter(float[] x, long[] ids, long tokenId, float[]? rows, int hidden, string kind)
    {
        int tokens = ids.Count(id => id == tokenId), available = rows is null ? 0 : rows.Length / hidden;
        if (tokens != available)
            throw new ModelException($"input_ids hold {tokens} {kind} tokens (id {tokenId}) but the {kind}s give {available} {kind} embeddings");
        if (rows is null) return;
        int next = 0;
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] == tokenId)
                Array.Copy(rows, (long)next++ * hidden, x, (long)i * hidden, hidden);
    }

    /// <summary>
    /// Mean cross-entropy of logits [B, S, V] at position t against labels[t + 1], over labels ≠ −100 (spec §9.1).
    /// Each term is log-sum-exp − logit in double over the float32 logits; the mean is returned as float32.
    /// NaN when no label counts, as in PyTorch.
    /// </summary>
    public static float ShiftedCrossEntropy(float[] logits, long[] labels, int batch, int seq, int vocab)
    {
        double total = 0;
        int count = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t + 1 < seq; t++)
            {
                long label = labels[b * seq + t + 1];
                if (label == IgnoreIndex) continue;
                if (label < 0 || label >= vocab)
                    throw new ModelException($"labels[{b}, {t + 1}] = {label} is outside the vocabulary [0, {vocab}) (use -100 to ignore a position)");
                var row = logits.AsSpan((b * seq + t) * vocab, vocab);
                double max = double.NegativeInfinity;
                foreach (float z in row) max = Math.Max(max, z);
                double sum = 0;
                foreach (float z in row) sum += Math.Exp(z - max);
                total += max + Math.Log(sum) - row[(int)label];
                count++;
            }
        return count == 0 ? float.NaN : (float)(total / count);
    }
}
