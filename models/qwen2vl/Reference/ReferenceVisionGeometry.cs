namespace Qwen2VL.Model.Reference;

/// <summary>
/// The reference's own copy of the vision geometry (spec §5.3–5.4): per-patch (h, w) rotary coordinates in the
/// processor's row order and the attention segment bounds. Kept separate and internal so that it can be swapped
/// for the preprocessing branch's <c>Qwen2VL.Model.Processing.VisionGeometry</c>.
/// </summary>
public static class ReferenceVisionGeometry
{
    /// <summary>
    /// [N, 2] (h, w) for every patch row: per item, per temporal block (coordinates repeat), merge windows in
    /// raster order (bh, bw), then the m×m patches of a window in raster order (i, j): h = m·bh + i, w = m·bw + j.
    /// </summary>
    public static long[] PatchPositions(IReadOnlyList<GridThw> grids, int merge)
    {
        var pos = new List<long>();
        foreach (var g in grids)
        {
            if (g.H % merge != 0 || g.W % merge != 0)
                throw new ArgumentException($"grid ({g.T}, {g.H}, {g.W}) is not divisible by the spatial merge size {merge}");
            for (int t = 0; t < g.T; t++)
                for (int bh = 0; bh < g.H / merge; bh++)
                    for (int bw = 0; bw < g.W / merge; bw++)
                        for (int i = 0; i < merge; i++)
                            for (int j = 0; j < merge; j++)
                            {
                                pos.Add(merge * bh + i);
                                pos.Add(merge * bw + j);
                            }
        }
        return pos.ToArray();
    }

    /// <summary>Segment bounds: H·W repeated T times per item, prefix-summed with a leading 0.</summary>
    public static long[] CuSeqlens(IReadOnlyList<GridThw> grids)
    {
        var cu = new List<long> { 0 };
        foreach (var g in grids)
            for (int t = 0; t < g.T; t++) cu.Add(cu[^1] + (long)g.H * g.W);
        return cu.ToArray();
    }
}
