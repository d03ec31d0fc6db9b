using Qwen2VL.Model.Processing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Qwen2VL.Tests.Processing;

/// <summary>Bad files and sizes give one-line PreprocessingExceptions that name the file.</summary>
public sealed class InputErrorTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-img-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string FixtureImage => FixtureReader.CaseFile("a_image_text", "image_0.png");

    static void AssertOneLine(Exception e) => Assert.DoesNotContain('\n', e.Message);

    [Fact]
    public void MissingFile()
    {
        string path = Path.Combine(_dir, "nope.png");
        var e = Assert.Throws<PreprocessingException>(() => RgbImage.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void NotAnImage()
    {
        string path = Path.Combine(_dir, "text.png");
        File.WriteAllText(path, "this is not a picture\nat all\n");
        var e = Assert.Throws<PreprocessingException>(() => RgbImage.Load(path));
        Assert.Contains(path, e.Message);
        AssertOneLine(e);
    }

    [Fact]
    public void TruncatedPng()
    {
        string path = Path.Combine(_dir, "cut.png");
        var bytes = File.ReadAllBytes(FixtureImage);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<PreprocessingException>(() => RgbImage.Load(path));
        Assert.Contains(path, e.Message);
        AssertOneLine(e);
    }

    [Fact]
    public void AboveDecodeLimit()
    {
        var e = Assert.Throws<PreprocessingException>(() => RgbImage.Load(FixtureImage, maxPixels: 1000));
        Assert.Contains(FixtureImage, e.Message);
        Assert.Contains("60x90 = 5400 pixels", e.Message);
    }

    [Fact]
    public void TooSmallForProcessor_NamesFile()
    {
        string path = Path.Combine(_dir, "thin.png");
        using (var img = new Image<Rgb24>(100, 20)) img.SaveAsPng(path);
        var processor = new ImageProcessor(new PreprocessorConfig());
        var e = Assert.Throws<PreprocessingException>(() => processor.Process([RgbImage.Load(path)]));
        Assert.Contains(path, e.Message);
        Assert.Contains("too small", e.Message);
    }

    [Fact]
    public void Load_DropsAlphaAndExpandsGrey()
    {
        string rgba = Path.Combine(_dir, "rgba.png"), grey = Path.Combine(_dir, "grey.png");
        using (var img = new Image<Rgba32>(3, 2, new Rgba32(10, 20, 30, 128))) img.SaveAsPng(rgba);
        using (var img = new Image<L8>(3, 2, new L8(77))) img.SaveAsPng(grey);

        var a = RgbImage.Load(rgba);
        Assert.Equal((3, 2), (a.Width, a.Height));
        Assert.Equal(Enumerable.Repeat(new byte[] { 10, 20, 30 }, 6).SelectMany(x => x), a.Rgb);
        Assert.All(RgbImage.Load(grey).Rgb, v => Assert.Equal(77, v));
        Assert.Equal(rgba, a.Source);
    }
}
