namespace Qwen2VL.Model.Processing;

/// <summary>
/// Spec §3.1: choose the resized (height, width) of an image so both sides are multiples of
/// <c>factor</c> (= patch · merge = 28), the area lies in [minPixels, maxPixels] and the aspect ratio is
/// nearly kept. All arithmetic in IEEE double with Python's rounding rules, because the fixtures and the
/// reference processors compute it that way.
/// </summary>
public static class SmartResize
{
    /// <summary>Images whose long side exceeds 200× the short side are refused by both reference front-ends.</summary>
    public const double MaxAspectRatio = 200;

    /// <summary>The Hugging Face processor rule (errors for sides below <paramref name="factor"/>).</summary>
    public static (int Height, int Width) Compute(int height, int width, int factor, int minPixels, int maxPixels) =>
        Compute(height, width, factor, (double)minPixels, maxPixels);

    /// <summary>
    /// HF rule with fractional pixel bounds: the qwen-vl-utils video budget (§3.5) produces a float max_pixels
    /// that the comparisons and the square root use as is.
    /// </summary>
    public static (int Height, int Width) Compute(int height, int width, int factor, double minPixels, double maxPixels)
    {
        if (height < factor || width < factor)
            throw new PreprocessingException(
                $"image of {height}x{width} (HxW) is too small: both sides must be at least {factor} pixels");
        return Scale(height, width, factor, minPixels, maxPixels, atLeastOneFactor: false);
    }

    /// <summary>
    /// The qwen-vl-utils variant: no lower-size error, and the rounded sides are at least one factor.
    /// </summary>
    public static (int Height, int Width) ComputeQwenVlUtils(int height, int width, int factor, double minPixels, double maxPixels)
    {
        if (height <= 0 || width <= 0)
            throw new PreprocessingException($"image of {height}x{width} (HxW) has no pixels");
        return Scale(height, width, factor, minPixels, maxPixels, atLeastOneFactor: true);
    }

    static (int Height, int Width) Scale(int height, int width, int factor, double minPixels, double maxPixels, bool atLeastOneFactor)
    {
        if (factor <= 0)
            throw new PreprocessingException($"smart_resize factor must be positive, got {factor}");
        if ((double)Math.Max(height, width) / Math.Min(height, width) > MaxAspectRatio)
            throw new PreprocessingException(
                $"image of {height}x{width} (HxW) has an aspect ratio above {MaxAspectRatio}");

        // Python round() is round-half-to-even, which is also Math.Round's default.
        long hBar = (long)Math.Round((double)height / factor) * factor;
        long wBar = (long)Math.Round((double)width / factor) * factor;
        if (atLeastOneFactor)
        {
            hBar = Math.Max(factor, hBar);
            wBar = Math.Max(factor, wBar);
        }

        double area = (double)((long)height * width);
        if (hBar * wBar > maxPixels)
        {
            double beta = Math.Sqrt(area / maxPixels);
            hBar = (long)Math.Floor(height / beta / factor) * factor;
            wBar = (long)Math.Floor(width / beta / factor) * factor;
        }
        else if (hBar * wBar < minPixels)
        {
            double beta = Math.Sqrt(minPixels / area);
            hBar = (long)Math.Ceiling(height * beta / factor) * factor;
            wBar = (long)Math.Ceiling(width * beta / factor) * factor;
        }

        // Python would return 0 here and fail later in the reshape; say so now.
        if (hBar <= 0 || wBar <= 0 || hBar > int.MaxValue || wBar > int.MaxValue)
            throw new PreprocessingException(
                $"image of {height}x{width} (HxW) cannot be resized into [{minPixels}, {maxPixels}] pixels (got {hBar}x{wBar})");
        return ((int)hBar, (int)wBar);
    }
}
