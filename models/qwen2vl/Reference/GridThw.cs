namespace Qwen2VL.Model.Reference;

/// <summary>One image's or video's patch grid (spec §3.4): temporal blocks, patch rows, patch columns.</summary>
public readonly record struct GridThw(int T, int H, int W)
{
    public int Patches => T * H * W;

    /// <summary>LLM tokens after the merge: T · (H/m) · (W/m).</summary>
    public int Tokens(int merge) => T * (H / merge) * (W / merge);

    /// <summary>Reads an [n, 3] int64 grid tensor (<c>image_grid_thw</c>).</summary>
    public static GridThw[] FromRows(long[] thw)
    {
        if (thw.Length % 3 != 0) throw new Qwen2VL.Runtime.ModelException($"grid_thw has {thw.Length} values, not a multiple of 3");
        var grids = new GridThw[thw.Length / 3];
        long total = 0;
        for (int i = 0; i < grids.Length; i++)
        {
            long t = thw[3 * i], h = thw[3 * i + 1], w = thw[3 * i + 2];
            // Checked here, once: every later T·H·W (patch counts, offsets, sums over rows) then fits an int.
            long? patches = Qwen2VL.Runtime.CheckedSize.Product([t, h, w]);
            if (t < 1 || h < 1 || w < 1 || patches is null || patches > int.MaxValue || (total += patches.Value) > int.MaxValue)
                throw new Qwen2VL.Runtime.ModelException($"grid_thw row {i} [{t}, {h}, {w}]: the patch count is not a positive number that fits in 32 bits (in total over all rows)");
            grids[i] = new GridThw((int)t, (int)h, (int)w);
        }
        return grids;
    }
}

/// <summary>The token ids that delimit and stand for vision inputs (config: vision_start_token_id, image_token_id, video_token_id).</summary>
public sealed record VisionTokenIds(long VisionStart, long Image, long Video);
