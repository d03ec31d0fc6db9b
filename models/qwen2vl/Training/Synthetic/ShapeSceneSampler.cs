using Qwen2VL.Model.Training.Data;

namespace Qwen2VL.Model.Training.Synthetic;

/// <summary>What a question asks about.</summary>
public enum ShapeQuestionType
{
    Colour,
    Kind,
    Count,
    Position,
}

/// <summary>
/// Draws random scenes suited to each question type. Sizes vary independently in both dimensions between
/// <see cref="MinSide"/> and <see cref="MaxSide"/>, so aspect ratios run from 1:2 to 2:1. Colour and kind questions
/// get one large shape (so the answer never depends on which shape is meant); count questions get one to three
/// small shapes in distinct regions; position questions one or two small shapes of different colours and kinds in
/// distinct regions, the question naming one of them.
/// </summary>
public static class ShapeSceneSampler
{
    public const int MinSide = 56;
    public const int MaxSide = 112;

    /// <summary>Region centres as fractions of (width, height): a fifth in from the named edge, or the middle.</summary>
    public static (double X, double Y) RegionCentre(ShapeRegion region) => region switch
    {
        ShapeRegion.Left => (0.2, 0.5),
        ShapeRegion.Right => (0.8, 0.5),
        ShapeRegion.Top => (0.5, 0.2),
        ShapeRegion.Bottom => (0.5, 0.8),
        ShapeRegion.Center => (0.5, 0.5),
        _ => throw new ArgumentOutOfRangeException(nameof(region)),
    };

    public static ShapeScene Sample(ShapeQuestionType type, SplitMix64 rng)
    {
        int w = rng.Next(MinSide, MaxSide), h = rng.Next(MinSide, MaxSide);
        return type switch
        {
            ShapeQuestionType.Colour or ShapeQuestionType.Kind => new ShapeScene(w, h, [LargeShape(w, h, rng)]),
            ShapeQuestionType.Count => new ShapeScene(w, h, SmallShapes(w, h, rng.Next(1, 3), distinctLooks: false, rng)),
            _ => new ShapeScene(w, h, SmallShapes(w, h, rng.Next(1, 2), distinctLooks: true, rng)),
        };
    }

    /// <summary>One shape of radius 28–38 % of the short side near the middle (jitter up to 8 % of each side).</summary>
    static Shape LargeShape(int w, int h, SplitMix64 rng)
    {
        double r = Math.Min(w, h) * (0.28 + 0.10 * rng.NextDouble());
        double cx = w * (0.5 + 0.08 * (2 * rng.NextDouble() - 1));
        double cy = h * (0.5 + 0.08 * (2 * rng.NextDouble() - 1));
        return new Shape(RandomKind(rng), RandomColour(rng), ShapeRegion.Center, cx, cy, r);
    }

    /// <summary>
    /// Shapes of radius 9–12 % of the short side in distinct regions, centres jittered by up to 2 % of each side.
    /// Neighbouring region centres are at least 30 % of a side apart, so after jitter (≤ 4 %) they stay 26 % apart,
    /// more than two radii (≤ 24 %): shapes never touch.
    /// </summary>
    static List<Shape> SmallShapes(int w, int h, int count, bool distinctLooks, SplitMix64 rng)
    {
        var regions = Enum.GetValues<ShapeRegion>().ToList();
        rng.Shuffle(regions);
        var shapes = new List<Shape>();
        for (int i = 0; i < count; i++)
        {
            var (fx, fy) = RegionCentre(regions[i]);
            double r = Math.Min(w, h) * (0.09 + 0.03 * rng.NextDouble());
            double cx = w * (fx + 0.02 * (2 * rng.NextDouble() - 1));
            double cy = h * (fy + 0.02 * (2 * rng.NextDouble() - 1));
            ShapeKind kind;
            ShapeColour colour;
            do
            {
                kind = RandomKind(rng);
                colour = RandomColour(rng);
            }
            while (distinctLooks && shapes.Any(s => s.Kind == kind || s.Colour == colour));
            shapes.Add(new Shape(kind, colour, regions[i], cx, cy, r));
        }
        return shapes;
    }

    static ShapeKind RandomKind(SplitMix64 rng) => (ShapeKind)rng.Next(Enum.GetValues<ShapeKind>().Length);

    static ShapeColour RandomColour(SplitMix64 rng) => (ShapeColour)rng.Next(Enum.GetValues<ShapeColour>().Length);
}
