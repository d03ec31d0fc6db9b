namespace Qwen2VL.Model.Processing;

/// <summary>
/// Spec §3.4: cut a stack of normalised frames into Tp×P×P cubes and lay them out as rows of pixel_values in
/// merge-window order, so each run of merge² consecutive rows is one window the PatchMerger concatenates.
/// </summary>
public static class PatchFlattener
{
    /// <summary>
    /// <paramref name="frames"/>: F frames of [3, height, width] float32 (channel-first), F a multiple of Tp.
    /// Writes grid_t·grid_h·grid_w rows of 3·Tp·P·P values into <paramref name="dst"/>.
    /// </summary>
    public static void Flatten(IReadOnlyList<float[]> frames, int height, int width,
        int patch, int temporalPatch, int merge, Span<float> dst)
    {
        int gridT = frames.Count / temporalPatch, gridH = height / patch, gridW = width / patch;
        int blocksH = gridH / merge, blocksW = gridW / merge;
        int patchDim = 3 * temporalPatch * patch * patch;
        int plane = height * width;
        int row = 0;
        // Row order [t_blk, bh, bw, i, j]; column order [c, t_in, y, x] (= the Conv3d weight's flattening).
        for (int tb = 0; tb < gridT; tb++)
            for (int bh = 0; bh < blocksH; bh++)
                for (int bw = 0; bw < blocksW; bw++)
                    for (int i = 0; i < merge; i++)
                        for (int j = 0; j < merge; j++, row++)
                        {
                            var outRow = dst.Slice(row * patchDim, patchDim);
                            int top = (bh * merge + i) * patch, left = (bw * merge + j) * patch;
                            int col = 0;
                            for (int c = 0; c < 3; c++)
                                for (int tin = 0; tin < temporalPatch; tin++)
                                {
                                    var frame = frames[tb * temporalPatch + tin];
                                    for (int y = 0; y < patch; y++)
                                    {
                                        frame.AsSpan(c * plane + (top + y) * width + left, patch).CopyTo(outRow.Slice(col));
                                        col += patch;
                                    }
                                }
                        }
    }
}
