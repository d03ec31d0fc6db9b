using System.Globalization;
using Qwen2VL.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Qwen2VL.Model.Training.Reporting;

/// <summary>
/// The loss curve as a PNG: axes with "nice" ticks (1, 2 or 5 × 10ᵏ apart) labelled with their step and loss values,
/// axis titles and a legend, in a built-in 5×7 pixel font (<see cref="PixelFont"/>, so no font file is needed); the
/// raw loss per step as a light line and its smoothed curve as a dark, thicker line. Smoothing is a centred moving
/// average whose window shrinks symmetrically at the ends (<see cref="CentredAverage"/>): it neither lags a falling
/// loss nor starts from a biased value (the first smoothed point is the first loss). Drawn pixel by pixel (Bresenham)
/// with ImageSharp, written atomically. Non-finite losses (a diverged step) are skipped rather than stretching the axis.
/// </summary>
public static class LossCurve
{
    public static readonly Rgba32 Background = new(255, 255, 255);
    public static readonly Rgba32 AxisColor = new(0, 0, 0);
    public static readonly Rgba32 RawColor = new(150, 190, 235);
    public static readonly Rgba32 AverageColor = new(200, 30, 30);

    /// <summary>Margins around the plot area, in pixels (left, top, right, bottom): room for tick labels and titles.</summary>
    public const int Left = 64, Top = 24, Right = 20, Bottom = 40;
    private const int TargetTicks = 5, TickLength = 5;

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

    /// <summary>Half-width of the smoothing window: the whole window is about a twentieth of the run.</summary>
    public static int HalfWidth(int count) => Math.Max(0, count / 40);

    /// <summary>
    /// At each point the mean of the points within <paramref name="halfWidth"/> on both sides, the half-width shrinking
    /// near the ends so the window stays centred (the first and last points are their own mean). A straight line comes
    /// out unchanged: no lag, no start-up bias.
    /// </summary>
    public static double[] CentredAverage(IReadOnlyList<double> values, int halfWidth)
    {
        int n = values.Count;
        var prefix = new double[n + 1];
        for (int i = 0; i < n; i++) prefix[i + 1] = prefix[i] + values[i];
        var result = new double[n];
        for (int i = 0; i < n; i++)
        {
            int h = Math.Min(halfWidth, Math.Min(i, n - 1 - i));
            result[i] = (prefix[i + h + 1] - prefix[i - h]) / (2 * h + 1);
        }
        return result;
    }

    /// <summary>Tick values inside [min, max], spaced 1, 2 or 5 × 10ᵏ apart for about <paramref name="target"/> ticks; and their decimals.</summary>
    public static (double[] Ticks, int Decimals) NiceTicks(double min, double max, int target = TargetTicks, bool integers = false)
    {
        double range = max - min;
        if (!(range > 0)) return ([min], Decimals(Math.Abs(min) > 0 ? Math.Abs(min) / 10 : 1));
        double raw = range / target, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(f => f * magnitude).First(s => s >= raw * 0.999);
        if (integers) step = Math.Max(1, Math.Round(step));
        var ticks = new List<double>();
        for (double t = Math.Ceiling(min / step - 1e-9) * step; t <= max + step * 1e-9; t += step)
            ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : t);
        return (ticks.ToArray(), integers ? 0 : Decimals(step));
    }

    private static int Decimals(double step) => Math.Clamp(-(int)Math.Floor(Math.Log10(step) + 1e-9), 0, 8);

    private static string Format(double value, int decimals) => value.ToString("F" + decimals, CultureInfo.InvariantCulture);

    private static Image<Rgba32> Draw(IReadOnlyList<(int Step, double Loss)> points, int width, int height)
    {
        var image = new Image<Rgba32>(width, height, Background);
        int x0 = Left, x1 = width - 1 - Right, y0 = height - 1 - Bottom, y1 = Top; // plot box; y grows downwards
        Line(image, x0, y0, x1, y0, AxisColor, 1);
        Line(image, x0, y0, x0, y1, AxisColor, 1);
        PixelFont.Draw(image, "loss", x0 - PixelFont.Width("loss") / 2, y1 - PixelFont.GlyphHeight - 8, AxisColor);
        PixelFont.Draw(image, "step", (x0 + x1 - PixelFont.Width("step")) / 2, y0 + TickLength + PixelFont.GlyphHeight + 10, AxisColor);

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

        var (stepTicks, _) = NiceTicks(minStep, maxStep, integers: true);
        foreach (double t in stepTicks)
        {
            int x = X(t);
            string label = Format(t, 0);
            Line(image, x, y0, x, y0 + TickLength, AxisColor, 1);
            int left = Math.Clamp(x - PixelFont.Width(label) / 2, 0, width - PixelFont.Width(label));
            PixelFont.Draw(image, label, left, y0 + TickLength + 3, AxisColor);
        }
        var (lossTicks, decimals) = NiceTicks(minLoss, maxLoss, target: 6);
        foreach (double t in lossTicks)
        {
            int y = Y(t);
            string label = Format(t, decimals);
            Line(image, x0 - TickLength, y, x0, y, AxisColor, 1);
            PixelFont.Draw(image, label, x0 - TickLength - 3 - PixelFont.Width(label), y - PixelFont.GlyphHeight / 2, AxisColor);
        }

        int half = HalfWidth(finite.Count);
        double[] average = CentredAverage(finite.Select(p => p.Loss).ToList(), half);
        Polyline(image, finite.Select(p => (X(p.Step), Y(p.Loss))).ToList(), RawColor, 1);
        Polyline(image, finite.Select((p, i) => (X(p.Step), Y(average[i]))).ToList(), AverageColor, 2);
        Legend(image, x0 + 48, y1 - PixelFont.GlyphHeight - 8, half);
        return image;
    }

    /// <summary>"— raw   — smoothed (centred mean of N)" above the plot box, after the loss title.</summary>
    private static void Legend(Image<Rgba32> image, int x, int y, int half)
    {
        int mid = y + PixelFont.GlyphHeight / 2;
        Line(image, x, mid, x + 14, mid, RawColor, 1);
        PixelFont.Draw(image, "raw", x + 18, y, AxisColor);
        x += 18 + PixelFont.Width("raw") + 14;
        Line(image, x, mid, x + 14, mid, AverageColor, 2);
        string text = half == 0 ? "smoothed (none)" : $"smoothed (centred mean of {2 * half + 1})";
        PixelFont.Draw(image, text, x + 18, y, AxisColor);
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
