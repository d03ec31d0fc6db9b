using System.Text.Json;
using Qwen2VL.Model.Processing;
using Xunit;

namespace Qwen2VL.Tests.Processing;

public class PreprocessorConfigTests
{
    static PreprocessorConfig Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return PreprocessorConfig.FromJson(doc.RootElement, "test.json");
    }

    [Fact]
    public void FixtureFile()
    {
        var c = PreprocessorConfig.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "preprocessor_config.json"));
        Assert.Equal((3136, 9408, 14, 2, 2), (c.MinPixels, c.MaxPixels, c.PatchSize, c.TemporalPatchSize, c.MergeSize));
        Assert.Equal(0.00392156862745098, c.RescaleFactor);
        Assert.Equal(PreprocessorConfig.ClipMean, c.ImageMean);
        Assert.Equal(PreprocessorConfig.ClipStd, c.ImageStd);
        Assert.Equal((28, 1176), (c.Factor, c.PatchDim));
    }

    [Fact]
    public void MissingKeys_TakeClassDefaults()
    {
        var c = Parse("{}");
        Assert.Equal((3136, 1003520, 14, 2, 2), (c.MinPixels, c.MaxPixels, c.PatchSize, c.TemporalPatchSize, c.MergeSize));
        Assert.Equal(1.0 / 255, c.RescaleFactor);
        Assert.Equal(PreprocessorConfig.ClipMean, c.ImageMean);
    }

    [Fact]
    public void SizeDict_UsedUnlessMinMaxPixelsGiven()
    {
        var c = Parse("""{"size": {"shortest_edge": 1000, "longest_edge": 20000}}""");
        Assert.Equal((1000, 20000), (c.MinPixels, c.MaxPixels));
        c = Parse("""{"size": {"shortest_edge": 1000, "longest_edge": 20000}, "max_pixels": 50000}""");
        Assert.Equal((1000, 50000), (c.MinPixels, c.MaxPixels));
    }

    [Theory]
    [InlineData("""{"patch_size": "14"}""", "patch_size")]
    [InlineData("""{"image_mean": [0.5, 0.5]}""", "image_mean")]
    [InlineData("""{"image_std": [0.5, 0, 0.5]}""", "image_std")]
    [InlineData("""{"min_pixels": 5000, "max_pixels": 4000}""", "min_pixels")]
    [InlineData("""{"resample": 2}""", "resample")]
    [InlineData("""{"do_resize": false}""", "do_resize")]
    [InlineData("""[1, 2]""", "object")]
    public void BadValues_NameTheKey(string json, string expected)
    {
        var e = Assert.Throws<PreprocessingException>(() => Parse(json));
        Assert.Contains(expected, e.Message);
        Assert.Contains("test.json", e.Message);
    }

    [Fact]
    public void FileErrors_NameTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("qwen2vl-cfg-").FullName;
        try
        {
            string missing = Path.Combine(dir, "preprocessor_config.json");
            Assert.Contains(missing, Assert.Throws<PreprocessingException>(() => PreprocessorConfig.Load(missing)).Message);
            File.WriteAllText(missing, "{ \"min_pixels\": ");
            var e = Assert.Throws<PreprocessingException>(() => PreprocessorConfig.Load(missing));
            Assert.Contains(missing, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void RescaleAndNormaliseFlags()
    {
        // One 28x28 image of a single colour: every value of its pixel_values is that colour's processed value.
        var rgb = Enumerable.Repeat(new byte[] { 51, 102, 204 }, 28 * 28).SelectMany(x => x).ToArray();
        var image = new RgbImage(28, 28, rgb);
        var config = new PreprocessorConfig { MinPixels = 28 * 28 };

        var plain = new ImageProcessor(config with { DoNormalize = false }).Process([image]).PixelValues;
        Assert.Equal((float)(51 / 255.0), plain[0]);                 // column 0 = channel R
        Assert.Equal((float)(204 / 255.0), plain[2 * 2 * 14 * 14]);  // first column of channel B

        var normalised = new ImageProcessor(config).Process([image]).PixelValues;
        Assert.Equal(((float)(102 * (1.0 / 255)) - 0.4578275f) / 0.26130258f, normalised[2 * 14 * 14]);

        var raw = new ImageProcessor(config with { DoNormalize = false, DoRescale = false }).Process([image]).PixelValues;
        Assert.Equal(102f, raw[2 * 14 * 14]);
    }
}
