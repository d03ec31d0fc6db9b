namespace Qwen2VL.Model.Processing;

/// <summary>
/// Per-patch geometry the vision tower needs besides pixel_values (spec §5 steps 3-4), derived from the
/// (t, h, w) grids in the same row order as <see cref="PatchFlattener"/> writes the patches.
/// </summary>
public static class VisionGeometry
{
    /// <summary>
    /// [N, 2] row-major: the (h, w) patch-grid coordinates of each pixel_values row, for the 2-D rotary
    /// embedding. Rows go item, temporal block, merge window (bh, bw), then (i, j) inside the window; the
    /// coordinates repeat identically for every temporal block.
    /// </summary>
    public static int[] RotaryPositions(IReadOnlyList<(int t, int h, int w)> grids, int mergeSize)
    {
        long total = 0;
        foreach (var g in grids)
        {
            CheckGrid(g, mergeSize);
            total += (long)g.t * g.h * g.w;
        }
        var pos = new int[checked((int)(total * 2))];
        int r = 0;
        foreach (var (t, h, w) in grids)
            for (int tb = 0; tb < t; tb++)
                for (int bh = 0; bh < h / mergeSize; bh++)
                    for (int bw = 0; bw < w / mergeSize; bw++)
                        for (int i = 0; i < mergeSize; i++)
                            for (int j = 0; j < mergeSize; j++, r++)
                            {
                                pos[2 * r] = bh * mergeSize + i;
                                pos[2 * r + 1] = bw * mergeSize + j;
                            }
        return pos;
    }

    /// <summary>
    /// Attention segment boundaries: one segment of h·w patches per (item, temporal block), prefix-summed
    /// with a leading 0, so frame pairs never attend to each other inside the ViT.
    /// </summary>
    public static int[] CuSeqlens(IReadOnlyList<(int t, int h, int w)> grids)
    {
        var cu = new List<int> { 0 };
        long sum = 0;
        foreach (var g in grids)
        {
            CheckGrid(g, 1);
            for (int tb = 0; tb < g.t; tb++)
            {
                sum += (long)g.h * g.w;
                cu.Add(checked((int)sum));
            }
        }
        return cu.ToArray();
    }

    static void CheckGrid((int t, int h, int w) g, int mergeSize)
    {
        if (g.t <= 0 || g.h <= 0 || g.w <= 0 || g.h % mergeSize != 0 || g.w % mergeSize != 0)
            throw new PreprocessingException(
                $"grid (t={g.t}, h={g.h}, w={g.w}) is invalid: all sizes must be positive and h, w multiples of {mergeSize}");
    }
}
