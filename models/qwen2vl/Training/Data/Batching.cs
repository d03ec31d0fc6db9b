using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Reference;

namespace Qwen2VL.Model.Training.Data;

/// <summary>Which end of a row the padding goes to: right for training, left for batched generation.</summary>
public enum PadSide
{
    Left,
    Right,
}

/// <summary>Pads encoded samples into one <see cref="ForwardInputs"/> batch, one sample per row.</summary>
public static class Batching
{
    /// <summary>
    /// Rows padded to the longest sample with <paramref name="padId"/>; attention mask 1 on real tokens, 0 on
    /// padding; labels −100 on padding; the images (and videos) of all rows concatenated in row order, which is the
    /// order the vision scatter and RopeIndex consume them in.
    /// </summary>
    public static ForwardInputs Collate(IReadOnlyList<EncodedSample> samples, PadSide side, long padId)
    {
        if (samples.Count == 0) throw new TrainingDataException("cannot collate an empty batch");
        int batch = samples.Count, seq = samples.Max(s => s.Length);
        var ids = new long[batch * seq];
        var mask = new long[batch * seq];
        var labels = new long[batch * seq];
        Array.Fill(ids, padId);
        Array.Fill(labels, EncodedSample.IgnoreIndex);
        for (int b = 0; b < batch; b++)
        {
            var s = samples[b];
            CheckLengths(s);
            int offset = b * seq + (side == PadSide.Left ? seq - s.Length : 0);
            s.Ids.CopyTo(ids, offset);
            s.Labels.CopyTo(labels, offset);
            mask.AsSpan(offset, s.Length).Fill(1);
        }
        return new ForwardInputs(ids, batch, seq, mask, Concat(samples.Select(s => s.Images)), Concat(samples.Select(s => s.Videos)), labels);
    }

    internal static void CheckLengths(EncodedSample s)
    {
        if (s.Labels.Length != s.Ids.Length)
            throw new TrainingDataException($"{s.Source ?? "sample"}: {s.Ids.Length} ids but {s.Labels.Length} labels");
        if (s.Length == 0) throw new TrainingDataException($"{s.Source ?? "sample"}: no tokens");
    }

    /// <summary>Stacks the patch rows of several vision batches (in order) and lists their grids; null if none has any.</summary>
    public static VisionBatch? Concat(IEnumerable<VisionBatch?> parts)
    {
        var present = parts.OfType<VisionBatch>().ToList();
        if (present.Count == 0) return null;
        int columns = present[0].Columns;
        if (present.Any(p => p.Columns != columns))
            throw new TrainingDataException("vision batches of one training batch have different patch sizes");
        int rows = present.Sum(p => p.Rows);
        var pixels = new float[(long)rows * columns];
        long offset = 0;
        foreach (var p in present)
        {
            p.PixelValues.AsSpan(0, p.Rows * columns).CopyTo(pixels.AsSpan((int)offset));
            offset += (long)p.Rows * columns;
        }
        return new VisionBatch(pixels, rows, columns, present.SelectMany(p => p.Grids).ToArray<GridThw>());
    }
}
