using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Qwen2VL.Tests.Training.Reporting;

public class LossCurveTests
{
    [Fact]
    public void PngDecodesWithTheRightSizeAxesAndCurves()
    {
        using var dir = new TempDirectory();
        string path = dir.File("loss.png");
        var points = Enumerable.Range(1, 200).Select(s => (s, 3.0 * Math.Exp(-s / 50.0) + 0.2 * Math.Sin(s))).ToList();
        points.Add((201, double.NaN)); // skipped, not drawn
        LossCurve.WritePng(path, points, width: 320, height: 200);

        using Image<Rgba32> image = Image.Load<Rgba32>(path);
        Assert.Equal((320, 200), (image.Width, image.Height));
        int bottom = 200 - 1 - LossCurve.Bottom, right = 320 - 1 - LossCurve.Right;
        Assert.Equal(LossCurve.AxisColor, image[LossCurve.Left, LossCurve.Top]);           // y axis
        Assert.Equal(LossCurve.AxisColor, image[(LossCurve.Left + right) / 2, bottom]);  // x axis
        Assert.Equal(LossCurve.Background, image[5, 5]);

        // The first step has the highest loss: its point is near the top-left corner of the plot box, the last
        // near the bottom-right; in every plot column the curve leaves a coloured pixel.
        int columnsWithCurve = 0;
        for (int x = LossCurve.Left + 1; x <= right; x++)
        {
            bool found = false;
            for (int y = LossCurve.Top; y < bottom && !found; y++)
                found = image[x, y].Equals(LossCurve.RawColor) || image[x, y].Equals(LossCurve.AverageColor);
            if (found) columnsWithCurve++;
        }
        Assert.Equal(right - LossCurve.Left, columnsWithCurve);
        Assert.True(CountColor(image, LossCurve.AverageColor) > 200);
        Assert.True(CountColor(image, LossCurve.RawColor) > 200);
        int firstY = FirstCurveRow(image, LossCurve.Left + 1), lastY = FirstCurveRow(image, right - 1);
        Assert.True(firstY < LossCurve.Top + 20 && lastY > firstY + 80, $"curve starts at row {firstY}, ends at row {lastY}");
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void SmoothingIsACentredMeanThatNeitherLagsNorStartsBiased()
    {
        Assert.Equal([1.0, 2.0, 3.0, 4.0, 5.0], LossCurve.CentredAverage([1, 2, 3, 4, 5], 2)); // a straight line is unchanged
        Assert.Equal([4.0, 2.0, 2.0, 2.0, 1.0], LossCurve.CentredAverage([4, 1, 1, 4, 1], 1));
        // A falling loss: the first smoothed value is the first loss (a trailing mean would lag above the curve,
        // a zero-started EMA without correction would start near 0).
        var falling = Enumerable.Range(0, 200).Select(i => 5.0 * Math.Exp(-i / 40.0)).ToList();
        var smooth = LossCurve.CentredAverage(falling, LossCurve.HalfWidth(falling.Count));
        Assert.Equal(falling[0], smooth[0]);
        for (int i = 0; i < falling.Count; i++)
            Assert.True(Math.Abs(smooth[i] - falling[i]) < 0.01 * falling[i] + 1e-12, $"point {i}: {smooth[i]} vs {falling[i]}");
        Assert.Equal(5, LossCurve.HalfWidth(200));
        Assert.Equal(0, LossCurve.HalfWidth(5));
    }

    [Fact]
    public void TicksAreNiceRoundNumbersInsideTheRange()
    {
        Assert.Equal([0.0, 20, 40, 60, 80, 100], LossCurve.NiceTicks(0, 100, integers: true).Ticks);
        Assert.Equal([1.0, 2, 3, 4], LossCurve.NiceTicks(1, 4, integers: true).Ticks);
        Assert.Equal(0, LossCurve.NiceTicks(1, 4, integers: true).Decimals);
        var (ticks, decimals) = LossCurve.NiceTicks(0.13, 2.61);
        Assert.Equal([0.5, 1.0, 1.5, 2.0, 2.5], ticks);
        Assert.Equal(1, decimals);
        Assert.Equal(2, LossCurve.NiceTicks(0.312, 0.355).Decimals);
    }

    [Fact]
    public void TickLabelsAndTitlesAreDrawn()
    {
        using var dir = new TempDirectory();
        LossCurve.WritePng(dir.File("loss.png"), Enumerable.Range(1, 50).Select(s => (s, 4.0 / s)).ToList(), 400, 300);
        using Image<Rgba32> image = Image.Load<Rgba32>(dir.File("loss.png"));
        int bottom = 300 - 1 - LossCurve.Bottom;
        // Loss labels left of the y axis, step labels and the "step" title below the x axis, the "loss" title above the box.
        Assert.True(Ink(image, 0, LossCurve.Top, LossCurve.Left - 6, bottom) > 60);
        Assert.True(Ink(image, LossCurve.Left, bottom + 7, 400 - LossCurve.Right, bottom + 16) > 60);
        Assert.True(Ink(image, LossCurve.Left + 100, bottom + 17, 300, 300) > 20);
        Assert.True(Ink(image, LossCurve.Left - 15, 0, LossCurve.Left + 15, LossCurve.Top - 2) > 20);
    }

    /// <summary>Axis-coloured pixels in [x0, x1) × [y0, y1).</summary>
    private static int Ink(Image<Rgba32> image, int x0, int y0, int x1, int y1)
    {
        int count = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                if (image[x, y].Equals(LossCurve.AxisColor)) count++;
        return count;
    }

    [Fact]
    public void EmptyAndSinglePointCurvesStillDraw()
    {
        using var dir = new TempDirectory();
        LossCurve.WritePng(dir.File("empty.png"), [], 100, 80);
        LossCurve.WritePng(dir.File("one.png"), [(1, 2.5)], 100, 80);
        using Image<Rgba32> one = Image.Load<Rgba32>(dir.File("one.png"));
        Assert.True(CountColor(one, LossCurve.AverageColor) > 0);
        using Image<Rgba32> empty = Image.Load<Rgba32>(dir.File("empty.png"));
        Assert.Equal(0, CountColor(empty, LossCurve.AverageColor));
        Assert.Contains("too small", Assert.ThrowsAny<ModelException>(() => LossCurve.WritePng(dir.File("x.png"), [], 30, 30)).Message);
    }

    private static int CountColor(Image<Rgba32> image, Rgba32 color)
    {
        int count = 0;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
                if (image[x, y].Equals(color)) count++;
        return count;
    }

    private static int FirstCurveRow(Image<Rgba32> image, int x)
    {
        for (int y = 0; y < image.Height; y++)
            if (image[x, y].Equals(LossCurve.AverageColor) || image[x, y].Equals(LossCurve.RawColor)) return y;
        return -1;
    }
}
