using Qwen2VL.Model.Compiled;

namespace Qwen2VL.Model.Training.Data;

/// <summary>The samples that share one packed sequence, in order.</summary>
public sealed record PackedRow(IReadOnlyList<EncodedSample> Samples)
{
    public int Length => Samples.Sum(s => s.Length);
}

/// <summary>
/// Sequence packing: several short samples laid end to end in one row so that no compute is spent on padding.
/// Each sample keeps to itself: the attention mask of a packed row holds segment ids (1, 2, 3 … per sample, 0 =
/// padding) and the runtime lets query i see key j only when j ≤ i and both carry the same non-zero id; M-RoPE
/// positions restart per sample (<see cref="PackedRopeIndex"/>).
/// </summary>
public static class Packing
{
    /// <summary>
    /// First-fit in the given order: each sample goes into the first row that still has room for it, else opens a
    /// new row. Deterministic, and the order within a row follows the input order. A sample longer than
    /// <paramref name="maxTokens"/> is an error (truncating it could cut an image's tokens off its pixels).
    /// </summary>
    public static IReadOnlyList<PackedRow> Pack(IReadOnlyList<EncodedSample> samples, int maxTokens)
    {
        if (maxTokens < 1) throw new TrainingDataException($"the packing budget must be at least 1 token, got {maxTokens}");
        var rows = new List<List<EncodedSample>>();
        var used = new List<int>();
        foreach (var s in samples)
        {
            Batching.CheckLengths(s);
            if (s.Length > maxTokens)
                throw new TrainingDataException($"{s.Source ?? "sample"}: {s.Length} tokens do not fit the packing budget of {maxTokens}");
            int row = used.FindIndex(u => u + s.Length <= maxTokens);
            if (row < 0)
            {
                rows.Add([]);
                used.Add(0);
                row = rows.Count - 1;
            }
            rows[row].Add(s);
            used[row] += s.Length;
        }
        return rows.Select(r => new PackedRow(r)).ToList();
    }

    /// <summary>
    /// The packed rows as one batch, right-padded to the longest row: ids (padding <paramref name="padId"/>),
    /// segment-id attention mask, labels, and the images / videos of all segments in row-then-segment order.
    /// </summary>
    /// <remarks>
    /// The first token of every segment gets label −100. The loss is shifted: logits at position t are scored
    /// against label t+1. Without this, the last token of segment k would be asked to predict the first token of
    /// segment k+1 — a token it cannot see and that has nothing to do with its own sample. (Within one unpacked
    /// sample the first label is dropped by the shift anyway; here it must be dropped by hand.)
    /// </remarks>
    public static ForwardInputs ToInputs(IReadOnlyList<PackedRow> rows, long padId)
    {
        if (rows.Count == 0) throw new TrainingDataException("cannot collate an empty packed batch");
        int batch = rows.Count, seq = rows.Max(r => r.Length);
        var ids = new long[batch * seq];
        var mask = new long[batch * seq];
        var labels = new long[batch * seq];
        Array.Fill(ids, padId);
        Array.Fill(labels, EncodedSample.IgnoreIndex);
        for (int b = 0; b < batch; b++)
        {
            int offset = b * seq, segment = 0;
            foreach (var s in rows[b].Samples)
            {
                segment++;
                s.Ids.CopyTo(ids, offset);
                s.Labels.CopyTo(labels, offset);
                labels[offset] = EncodedSample.IgnoreIndex;
                mask.AsSpan(offset, s.Length).Fill(segment);
                offset += s.Length;
            }
        }
        var all = rows.SelectMany(r => r.Samples).ToList();
        return new ForwardInputs(ids, batch, seq, mask,
            Batching.Concat(all.Select(s => s.Images)), Batching.Concat(all.Select(s => s.Videos)), labels);
    }
}
