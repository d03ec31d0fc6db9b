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
    public void MovingAverageIsTheMeanOfTheLastWindow()
    {
        Assert.Equal([1.0, 1.5, 2.5, 3.5], LossCurve.MovingAverage([1, 2, 3, 4], 2));
        Assert.Equal(10, LossCurve.Window(200));
        Assert.Equal(1, LossCurve.Window(5));
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
