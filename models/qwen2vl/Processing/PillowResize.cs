namespace Qwen2VL.Model.Processing;

/// <summary>
/// Pillow's <c>Image.resize(size, BICUBIC)</c> on an 8-bit RGB image, reproduced bit for bit (spec §3.2), because
/// the reference processor resizes with Pillow and its output is not what OpenCV, torchvision or ImageSharp
/// produce. The algorithm is the one in Pillow's libImaging/Resample.c:
/// <list type="bullet">
/// <item>separable: a horizontal pass into a uint8 intermediate, then a vertical pass; a pass whose size does
///   not change is skipped, and a same-size resize is a plain copy;</item>
/// <item>cubic convolution kernel with a = −0.5 and support 2, widened by the scale factor when downscaling
///   (antialiasing);</item>
/// <item>per output pixel the weights are normalised to sum 1 in double, then turned into 22-bit fixed point
///   (rounded half away from zero); sums start at 2²¹ (for rounding), are shifted right by 22 and clamped to 0…255.</item>
/// </list>
/// </summary>
public static class PillowResize
{
    /// <summary>Fractional bits of the fixed-point weights: 32 bits − 8 for the pixel − 2 for overshoot.</summary>
    const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Support of the bicubic kernel at scale 1.</summary>
    const double BicubicSupport = 2.0;

    public static RgbImage Bicubic(RgbImage src, int newWidth, int newHeight)
    {
        if (newWidth <= 0 || newHeight <= 0)
            throw new PreprocessingException($"{src.Name}: cannot resize to {newWidth}x{newHeight}");
        if (newWidth == src.Width && newHeight == src.Height)
            return src.Copy();

        var vertical = AxisFilter.Bicubic(src.Height, newHeight);
        var image = src;
        if (newWidth != src.Width)
        {
            // Only the source rows the vertical pass will read are filtered horizontally.
            int firstRow = vertical.Start[0];
            int lastRow = vertical.Start[newHeight - 1] + vertical.Count[newHeight - 1];
            var horizontal = AxisFilter.Bicubic(src.Width, newWidth);
            image = Horizontal(src, horizontal, firstRow, lastRow - firstRow);
            vertical = vertical.ShiftedBy(-firstRow);
        }
        if (newHeight != src.Height)
            image = Vertical(image, vertical);
        return new RgbImage(image.Width, image.Height, image.Rgb, src.Source);
    }

    /// <summary>Cubic convolution kernel (Keys) with a = −0.5, as Pillow writes it.</summary>
    static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    static RgbImage Horizontal(RgbImage src, AxisFilter f, int firstRow, int rows)
    {
        int outW = f.Start.Length;
        var dst = new byte[(long)outW * rows * 3];
        var inp = src.Rgb;
        Parallel.For(0, rows, y =>
        {
            long inRow = (long)(y + firstRow) * src.Width * 3;
            long outRow = (long)y * outW * 3;
            for (int xx = 0; xx < outW; xx++)
            {
                int start = f.Start[xx], count = f.Count[xx], k0 = xx * f.KSize;
                int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                for (int k = 0; k < count; k++)
                {
                    int w = f.Weights[k0 + k];
                    long p = inRow + (long)(start + k) * 3;
                    s0 += inp[p] * w;
                    s1 += inp[p + 1] * w;
                    s2 += inp[p + 2] * w;
                }
                dst[outRow + xx * 3] = Clip8(s0);
                dst[outRow + xx * 3 + 1] = Clip8(s1);
                dst[outRow + xx * 3 + 2] = Clip8(s2);
            }
        });
        return new RgbImage(outW, rows, dst);
    }

    static RgbImage Vertical(RgbImage src, AxisFilter f)
    {
        int outH = f.Start.Length, w = src.Width;
        var dst = new byte[(long)w * outH * 3];
        var inp = src.Rgb;
        Parallel.For(0, outH, yy =>
        {
            int start = f.Start[yy], count = f.Count[yy], k0 = yy * f.KSize;
            long outRow = (long)yy * w * 3;
            for (int xx = 0; xx < w; xx++)
            {
                int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                for (int k = 0; k < count; k++)
                {
                    int wt = f.Weights[k0 + k];
                    long p = ((long)(start + k) * w + xx) * 3;
                    s0 += inp[p] * wt;
                    s1 += inp[p + 1] * wt;
                    s2 += inp[p + 2] * wt;
                }
                dst[outRow + xx * 3] = Clip8(s0);
                dst[outRow + xx * 3 + 1] = Clip8(s1);
                dst[outRow + xx * 3 + 2] = Clip8(s2);
            }
        });
        return new RgbImage(w, outH, dst);
    }

    /// <summary>Fixed-point sum → byte: arithmetic shift, then clamp (Pillow uses a lookup table for the clamp).</summary>
    static byte Clip8(int sum)
    {
        int v = sum >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    /// <summary>
    /// The fixed-point weights of one axis (Pillow's precompute_coeffs + normalize_coeffs_8bpc) for the full
    /// input range [0, inSize): output pixel i reads input pixels Start[i] … Start[i]+Count[i]−1 with
    /// Weights[i·KSize + k].
    /// </summary>
    sealed class AxisFilter(int[] start, int[] count, int[] weights, int kSize)
    {
        public int[] Start { get; } = start;
        public int[] Count { get; } = count;
        public int[] Weights { get; } = weights;
        public int KSize { get; } = kSize;

        public AxisFilter ShiftedBy(int delta) =>
            new(Array.ConvertAll(Start, s => s + delta), Count, Weights, KSize);

        public static AxisFilter Bicubic(int inSize, int outSize)
        {
            // Pillow passes the box edges as C floats; for a whole-image box they are exact integers.
            double scale = (double)(float)inSize / outSize;
            double filterScale = Math.Max(scale, 1.0);
            double support = BicubicSupport * filterScale;
            int kSize = (int)Math.Ceiling(support) * 2 + 1;

            var start = new int[outSize];
            var count = new int[outSize];
            var weights = new int[(long)outSize * kSize];
            var w = new double[kSize];
            double ss = 1.0 / filterScale;
            for (int xx = 0; xx < outSize; xx++)
            {
                double center = (xx + 0.5) * scale;
                // (int) truncates toward zero like C; negatives are clamped to 0 right after.
                int xmin = Math.Max((int)(center - support + 0.5), 0);
                int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;

                double sum = 0.0;
                for (int x = 0; x < xmax; x++)
                {
                    w[x] = Cubic((x + xmin - center + 0.5) * ss);
                    sum += w[x];
                }
                for (int x = 0; x < xmax; x++)
                {
                    double normalised = sum != 0.0 ? w[x] / sum : w[x];
                    // Round half away from zero into 22-bit fixed point; the (int) cast truncates like C's.
                    weights[(long)xx * kSize + x] = normalised < 0
                        ? (int)(-0.5 + normalised * (1 << PrecisionBits))
                        : (int)(0.5 + normalised * (1 << PrecisionBits));
                }
                start[xx] = xmin;
                count[xx] = xmax;
            }
            return new AxisFilter(start, count, weights, kSize);
        }
    }
}
