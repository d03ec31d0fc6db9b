using Qwen2VL.Model.Processing;
using Xunit;

namespace Qwen2VL.Tests.Processing;

/// <summary>
/// Properties of the Pillow resize beyond the fixture images (which pin it bit for bit on both-axis up- and
/// downscales): one-axis resizes, extreme ratios, and agreement with a plain double-precision version of the
/// same filter up to the fixed-point rounding.
/// </summary>
public class PillowResizeTests
{
    static RgbImage Random(int w, int h, int seed)
    {
        var rgb = new byte[w * h * 3];
        new Random(seed).NextBytes(rgb);
        return new RgbImage(w, h, rgb);
    }

    /// <summary>Keys cubic (a = −0.5) in double, widened when downscaling, rounded to uint8 after each pass.</summary>
    static RgbImage Reference(RgbImage src, int outW, int outH)
    {
        var mid = outW == src.Width ? src : Pass(src, outW, horizontal: true);
        return outH == src.Height ? mid : Pass(mid, outH, horizontal: false);
    }

    static RgbImage Pass(RgbImage src, int outSize, bool horizontal)
    {
        int inSize = horizontal ? src.Width : src.Height;
        int w = horizontal ? outSize : src.Width, h = horizontal ? src.Height : outSize;
        double scale = (double)inSize / outSize, fs = Math.Max(scale, 1), support = 2 * fs;
        var dst = new byte[w * h * 3];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int lo = Math.Max(0, (int)Math.Floor(center - support + 0.5)), hi = Math.Min(inSize, (int)Math.Floor(center + support + 0.5));
            var wts = Enumerable.Range(lo, hi - lo).Select(i => Kernel((i - center + 0.5) / fs)).ToArray();
            double sum = wts.Sum();
            for (int other = 0; other < (horizontal ? h : w); other++)
                for (int c = 0; c < 3; c++)
                {
                    double acc = 0;
                    for (int i = lo; i < hi; i++)
                        acc += wts[i - lo] / sum * (horizontal ? src[i, other, c] : src[other, i, c]);
                    int x = horizontal ? o : other, y = horizontal ? other : o;
                    dst[(y * w + x) * 3 + c] = (byte)Math.Clamp(Math.Floor(acc + 0.5), 0, 255);
                }
        }
        return new RgbImage(w, h, dst);
    }

    static double Kernel(double x)
    {
        x = Math.Abs(x);
        return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * -0.5 : 0;
    }

    [Theory]
    [InlineData(37, 23, 37, 50)]   // vertical pass only
    [InlineData(37, 23, 80, 23)]   // horizontal pass only
    [InlineData(37, 23, 12, 23)]
    [InlineData(37, 23, 37, 7)]
    [InlineData(37, 23, 200, 150)] // large upscale
    [InlineData(120, 90, 5, 3)]    // strong downscale (wide support)
    [InlineData(120, 90, 1, 1)]
    [InlineData(9, 200, 28, 56)]
    public void AgreesWithDoubleReferenceWithinRounding(int w, int h, int outW, int outH)
    {
        var src = Random(w, h, w * 1000 + h);
        var got = PillowResize.Bicubic(src, outW, outH);
        var want = Reference(src, outW, outH);
        Assert.Equal((outW, outH), (got.Width, got.Height));
        int passes = (outW != w ? 1 : 0) + (outH != h ? 1 : 0);
        int maxDiff = got.Rgb.Zip(want.Rgb, (a, b) => Math.Abs(a - b)).Max();
        // One uint8 level per pass from fixed point vs double; a second pass can carry the first's difference
        // through weights that overshoot 1 (negative lobes), hence the allowance of 2 for two passes.
        Assert.True(maxDiff <= passes, $"{w}x{h} -> {outW}x{outH}: max |diff| {maxDiff} vs a double-precision reference");
    }

    [Fact]
    public void SolidColourStaysSolid()
    {
        var rgb = new byte[50 * 30 * 3];
        for (int i = 0; i < rgb.Length; i += 3) { rgb[i] = 255; rgb[i + 1] = 7; rgb[i + 2] = 128; }
        foreach (var (w, h) in new[] { (17, 31), (112, 56), (1, 1), (50, 90) })
        {
            var r = PillowResize.Bicubic(new RgbImage(50, 30, rgb), w, h);
            for (int i = 0; i < r.Rgb.Length; i += 3)
                Assert.Equal((255, 7, 128), (r.Rgb[i], r.Rgb[i + 1], r.Rgb[i + 2]));
        }
    }

    [Fact]
    public void SameSize_ReturnsEqualCopy()
    {
        var src = Random(10, 8, 1);
        var r = PillowResize.Bicubic(src, 10, 8);
        Assert.NotSame(src.Rgb, r.Rgb);
        Assert.Equal(src.Rgb, r.Rgb);
    }

    [Fact]
    public void EmptyTarget_Throws()
    {
        Assert.Throws<PreprocessingException>(() => PillowResize.Bicubic(Random(10, 8, 1), 0, 8));
    }
}
