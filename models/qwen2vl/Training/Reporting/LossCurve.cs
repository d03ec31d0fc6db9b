using Qwen2VL.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Qwen2VL.Model.Training.Reporting;

/// <summary>
/// The loss curve as a PNG: axes with tick marks (no text, so no font is needed), the raw loss per step as a
/// light line and its moving average as a dark, thicker line. Drawn pixel by pixel (Bresenham) with ImageSharp,
/// written atomically. Non-finite losses (a diverged step) are skipped rather than stretching the axis.
/// </summary>
public static class LossCurve
{
    public static readonly Rgba32 Background = new(255, 255, 255);
    public static readonly Rgba32 AxisColor = new(0, 0, 0);
    public static readonly Rgba32 RawColor = new(150, 190, 235);
    public static readonly Rgba32 AverageColor = new(200, 30, 30);

    /// <summary>Margins around the plot area, in pixels (left, top, right, bottom).</summary>
    public const int Left = 40, Top = 20, Right = 20, Bottom = 30;
    private const int Ticks = 5, TickLength = 5;

    public static void WritePng(string path, IReadOnlyList<(int Step, double Loss)> points, int width = 800, int height = 480)
    {
        if (width < Left + Right + 10 || height < Top + Bottom + 10)
            throw new ModelException($"{Path.GetFileName(path)}: loss curve of {width}x{height} pixels is too small (at least {Left + Right + 10}x{Top + Bottom + 10})");
        using var image = Draw(points, width, height);
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                image.SaveAsPng(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Moving-average window: a twentieth of the run, so the trend shows at any length.</summary>
    public static int Window(int count) => Math.Max(1, count / 20);

    /// <summary>Mean of the last <paramref name="window"/> losses at each point (fewer at the start).</summary>
    public static double[] MovingAverage(IReadOnlyList<double> losses, int window)
    {
        var result = new double[losses.Count];
        double sum = 0;
        for (int i = 0; i < losses.Count; i++)
        {
            sum += losses[i];
            if (i >= window) sum -= losses[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }

    private static Image<Rgba32> Draw(IReadOnlyList<(int Step, double Loss)> points, int width, int height)
    {
        var image = new Image<Rgba32>(width, height, Background);
        int x0 = Left, x1 = width - 1 - Right, y0 = height - 1 - Bottom, y1 = Top; // plot box; y grows downwards
        Line(image, x0, y0, x1, y0, AxisColor, 1);
        Line(image, x0, y0, x0, y1, AxisColor, 1);
        for (int t = 0; t <= Ticks; t++)
        {
            int x = x0 + (x1 - x0) * t / Ticks, y = y0 + (y1 - y0) * t / Ticks;
            Line(image, x, y0, x, y0 + TickLength, AxisColor, 1);
            Line(image, x0 - TickLength, y, x0, y, AxisColor, 1);
        }

        var finite = points.Where(p => double.IsFinite(p.Loss)).OrderBy(p => p.Step).ToList();
        if (finite.Count == 0) return image;
        double minStep = finite[0].Step, maxStep = finite[^1].Step;
        double minLoss = finite.Min(p => p.Loss), maxLoss = finite.Max(p => p.Loss);
        double pad = (maxLoss - minLoss) * 0.05;
        if (pad == 0) pad = Math.Max(Math.Abs(maxLoss) * 0.05, 1e-6); // a flat curve sits mid-height
        minLoss -= pad;
        maxLoss += pad;
        int X(double step) => maxStep == minStep ? (x0 + x1) / 2 : x0 + (int)Math.Round((step - minStep) / (maxStep - minStep) * (x1 - x0));
        int Y(double loss) => y0 + (int)Math.Round((loss - minLoss) / (maxLoss - minLoss) * (y1 - y0));

        double[] average = MovingAverage(finite.Select(p => p.Loss).ToList(), Window(finite.Count));
        Polyline(image, finite.Select(p => (X(p.Step), Y(p.Loss))).ToList(), RawColor, 1);
        Polyline(image, finite.Select((p, i) => (X(p.Step), Y(average[i]))).ToList(), AverageColor, 2);
        return image;
    }

    private static void Polyline(Image<Rgba32> image, List<(int X, int Y)> points, Rgba32 color, int thickness)
    {
        if (points.Count == 1) Line(image, points[0].X, points[0].Y, points[0].X, points[0].Y, color, thickness);
        for (int i = 1; i < points.Count; i++)
            Line(image, points[i - 1].X, points[i - 1].Y, points[i].X, points[i].Y, color, thickness);
    }

    /// <summary>Bresenham's line; thickness 2 also paints the pixel to the right and below.</summary>
    private static void Line(Image<Rgba32> image, int xa, int ya, int xb, int yb, Rgba32 color, int thickness)
    {
        int dx = Math.Abs(xb - xa), dy = -Math.Abs(yb - ya), sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1, error = dx + dy;
        while (true)
        {
            for (int ox = 0; ox < thickness; ox++)
                for (int oy = 0; oy < thickness; oy++)
                {
                    int x = xa + ox, y = ya + oy;
                    if (x >= 0 && y >= 0 && x < image.Width && y < image.Height) image[x, y] = color;
                }
            if (xa == xb && ya == yb) return;
            int e2 = 2 * error;
            if (e2 >= dy) { error += dy; xa += sx; }
            if (e2 <= dx) { error += dx; ya += sy; }
        }
    }
}
