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
        if (thw.Length % 3 != 0) throw new ArgumentException($"grid_thw has {thw.Length} values, not a multiple of 3");
        return Enumerable.Range(0, thw.Length / 3)
            .Select(i => new GridThw(checked((int)thw[3 * i]), checked((int)thw[3 * i + 1]), checked((int)thw[3 * i + 2])))
            .ToArray();
    }
}

/// <summary>The token ids that delimit and stand for vision inputs (config: vision_start_token_id, image_token_id, video_token_id).</summary>
public sealed record VisionTokenIds(long VisionStart, long Image, long Video);
