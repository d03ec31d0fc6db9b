using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Distributed;

namespace Qwen2VL.Model.Training.Distributed;

/// <summary>
/// A data-parallel rank's share of a batch: a contiguous block of its rows (<see cref="BlockPartition.Balanced"/>:
/// the first B mod DP ranks take one row more), with the images and videos those rows hold — found by walking the
/// rows' vision tokens in order, each grid standing for T·(H/m)·(W/m) of them.
/// </summary>
public static class BatchShards
{
    /// <summary>Rank <paramref name="rank"/>'s rows of <paramref name="inputs"/> (null when it gets none).</summary>
    public static ForwardInputs? Rows(ForwardInputs inputs, int rank, int ranks, VisionTokenIds ids, int merge)
    {
        var blocks = BlockPartition.Balanced(inputs.Batch, ranks);
        int first = blocks.Start(rank), count = blocks.Count(rank), s = inputs.Seq;
        if (count == 0) return null;
        long[] Take(long[] all) => all.AsSpan(first * s, count * s).ToArray();
        return new ForwardInputs(Take(inputs.InputIds), count, s,
            inputs.AttentionMask is null ? null : Take(inputs.AttentionMask),
            Vision(inputs.Images, inputs, ids.Image, first, count, merge, "image"),
            Vision(inputs.Videos, inputs, ids.Video, first, count, merge, "video"),
            inputs.Labels is null ? null : Take(inputs.Labels));
    }

    private static VisionBatch? Vision(VisionBatch? all, ForwardInputs inputs, long token, int first, int count, int merge, string what)
    {
        if (all is null) return null;
        // Vision tokens before the block and inside it, in the order the grids were given.
        int before = 0, inside = 0;
        for (int i = 0; i < (first + count) * inputs.Seq; i++)
            if (inputs.InputIds[i] == token) { if (i < first * inputs.Seq) before++; else inside++; }
        int grid = 0, row = 0;
        for (int skipped = 0; skipped < before; grid++)
        {
            if (grid >= all.Grids.Count) throw new ModelException($"the batch has more {what} tokens than its grids stand for");
            skipped += all.Grids[grid].Tokens(merge);
            row += all.Grids[grid].Patches;
        }
        int firstGrid = grid, firstRow = row;
        for (int taken = 0; taken < inside; grid++)
        {
            if (grid >= all.Grids.Count) throw new ModelException($"the batch has more {what} tokens than its grids stand for");
            taken += all.Grids[grid].Tokens(merge);
            row += all.Grids[grid].Patches;
        }
        if (grid == firstGrid) return null;
        var pixels = all.PixelValues.AsSpan(firstRow * all.Columns, (row - firstRow) * all.Columns).ToArray();
        return new VisionBatch(pixels, row - firstRow, all.Columns, all.Grids.Skip(firstGrid).Take(grid - firstGrid).ToArray());
    }
}
