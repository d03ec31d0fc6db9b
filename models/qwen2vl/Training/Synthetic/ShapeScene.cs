namespace Qwen2VL.Model.Training.Synthetic;

public enum ShapeKind
{
    Circle,
    Square,
    Triangle,
}

public enum ShapeColour
{
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

/// <summary>Where a shape sits: one of five regions of the image.</summary>
public enum ShapeRegion
{
    Left,
    Right,
    Top,
    Bottom,
    Center,
}

/// <summary>One shape: its kind, colour, region, centre (pixels) and radius (half its height).</summary>
public sealed record Shape(ShapeKind Kind, ShapeColour Colour, ShapeRegion Region, double CenterX, double CenterY, double Radius);

/// <summary>An image of <see cref="Width"/> × <see cref="Height"/> pixels with shapes on a white background.</summary>
public sealed record ShapeScene(int Width, int Height, IReadOnlyList<Shape> Shapes);

/// <summary>The closed vocabulary of the task: the words used in questions and the single-word answers.</summary>
public static class ShapeWords
{
    public static string Name(ShapeKind kind) => kind.ToString().ToLowerInvariant();

    public static string Name(ShapeColour colour) => colour.ToString().ToLowerInvariant();

    public static string Name(ShapeRegion region) => region.ToString().ToLowerInvariant();

    public static string Count(int n) => n switch
    {
        1 => "one",
        2 => "two",
        3 => "three",
        _ => throw new ArgumentOutOfRangeException(nameof(n), n, "scenes hold one to three shapes"),
    };

    /// <summary>sRGB of each colour: saturated and far apart, so a few patches of any of them are unmistakable.</summary>
    public static (byte R, byte G, byte B) Rgb(ShapeColour colour) => colour switch
    {
        ShapeColour.Red => (220, 30, 30),
        ShapeColour.Green => (30, 170, 40),
        ShapeColour.Blue => (30, 60, 220),
        ShapeColour.Yellow => (240, 210, 20),
        ShapeColour.Purple => (140, 40, 180),
        ShapeColour.Orange => (245, 130, 20),
        _ => throw new ArgumentOutOfRangeException(nameof(colour)),
    };

    public static readonly (byte R, byte G, byte B) Background = (255, 255, 255);

    /// <summary>Every answer the task can have (17 words).</summary>
    public static IReadOnlyList<string> AllAnswers { get; } =
    [
        .. Enum.GetValues<ShapeColour>().Select(Name),
        .. Enum.GetValues<ShapeKind>().Select(Name),
        .. new[] { 1, 2, 3 }.Select(Count),
        .. Enum.GetValues<ShapeRegion>().Select(Name),
    ];
}
