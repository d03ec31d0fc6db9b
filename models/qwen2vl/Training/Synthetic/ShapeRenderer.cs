using Qwen2VL.Model.Processing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Qwen2VL.Model.Training.Synthetic;

/// <summary>
/// Draws a <see cref="ShapeScene"/> pixel by pixel: a pixel takes a shape's colour when its centre (x + ½, y + ½)
/// lies inside the shape; later shapes are drawn over earlier ones (scenes never overlap them). No anti-aliasing,
/// so the pixels are an exact function of the scene.
/// </summary>
public static class ShapeRenderer
{
    public static RgbImage Render(ShapeScene scene)
    {
        var rgb = new byte[scene.Width * scene.Height * 3];
        for (int i = 0; i < scene.Width * scene.Height; i++)
            (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = ShapeWords.Background;
        foreach (var shape in scene.Shapes)
        {
            var (r, g, b) = ShapeWords.Rgb(shape.Colour);
            for (int y = 0; y < scene.Height; y++)
                for (int x = 0; x < scene.Width; x++)
                {
                    if (!Contains(shape, x + 0.5, y + 0.5)) continue;
                    int o = 3 * (y * scene.Width + x);
                    (rgb[o], rgb[o + 1], rgb[o + 2]) = (r, g, b);
                }
        }
        return new RgbImage(scene.Width, scene.Height, rgb);
    }

    /// <summary>
    /// Inside test with the radius r as the shape's half height: a disc of radius r; a square of half side 0.85 r (about
    /// the disc's area); an upright isosceles triangle with apex (cx, cy − r) and base from (cx − r, cy + r) to
    /// (cx + r, cy + r).
    /// </summary>
    public static bool Contains(Shape s, double px, double py)
    {
        double dx = px - s.CenterX, dy = py - s.CenterY, r = s.Radius;
        return s.Kind switch
        {
            ShapeKind.Circle => dx * dx + dy * dy <= r * r,
            ShapeKind.Square => Math.Abs(dx) <= 0.85 * r && Math.Abs(dy) <= 0.85 * r,
            ShapeKind.Triangle => dy >= -r && dy <= r && Math.Abs(dx) <= (dy + r) / 2,
            _ => throw new ArgumentOutOfRangeException(nameof(s)),
        };
    }

    /// <summary>Writes the image as PNG, atomically (temp file, then move).</summary>
    public static void SavePng(RgbImage image, string path)
    {
        using var img = Image.LoadPixelData<Rgb24>(image.Rgb, image.Width, image.Height);
        var temp = path + ".tmp";
        img.SaveAsPng(temp);
        File.Move(temp, path, overwrite: true);
    }
}
