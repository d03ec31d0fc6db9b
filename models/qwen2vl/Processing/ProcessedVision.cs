namespace Qwen2VL.Model.Processing;

/// <summary>
/// Processor output for a set of images or of videos (spec §3.4): <c>pixel_values</c> float32, row-major
/// [N, C·Tp·P·P] with N = Σ t·h·w, and one (t, h, w) grid per item in patch units.
/// </summary>
public sealed class ProcessedVision(float[] pixelValues, int patchDim, IReadOnlyList<(int T, int H, int W)> grids)
{
    public float[] PixelValues { get; } = pixelValues;

    /// <summary>Columns of <see cref="PixelValues"/> (1176 for Qwen2-VL).</summary>
    public int PatchDim { get; } = patchDim;

    /// <summary>(grid_t, grid_h, grid_w) per item, in order (<c>image_grid_thw</c> / <c>video_grid_thw</c>).</summary>
    public IReadOnlyList<(int T, int H, int W)> Grids { get; } = grids;

    /// <summary>Rows of <see cref="PixelValues"/>.</summary>
    public int PatchCount => PixelValues.Length / PatchDim;
}
