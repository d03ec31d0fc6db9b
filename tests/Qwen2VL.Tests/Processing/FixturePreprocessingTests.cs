using Qwen2VL.Model.Processing;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Processing;

/// <summary>
/// The processor against the transformers v4.49 fixtures: the Pillow-resized uint8 frames must be identical
/// and pixel_values within 1e-6 (README "Suggested checks").
/// </summary>
public class FixturePreprocessingTests(ITestOutputHelper output)
{
    static readonly string ConfigPath =
        Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "preprocessor_config.json");

    static ImageProcessor Processor() => ImageProcessor.Load(ConfigPath);

    [Theory]
    [InlineData("a_image_text", new[] { "image_0.png" })]
    [InlineData("b_batch2_two_images_leftpad", new[] { "image_0.png", "image_1.png" })]
    public void ImageCase_ResizedBytesAndPixelValuesMatch(string caseName, string[] files)
    {
        var inputs = new FixtureReader(FixtureReader.CaseFile(caseName, "inputs.safetensors"));
        var processor = Processor();
        var images = files.Select(f => RgbImage.Load(FixtureReader.CaseFile(caseName, f))).ToList();

        for (int k = 0; k < images.Count; k++)
        {
            var resized = processor.Resize(images[k]);
            var shape = inputs.Shape($"image_{k}_resized_u8");
            Assert.Equal(new long[] { resized.Height, resized.Width, 3 }, shape);
            AssertBytesEqual($"{caseName} image_{k}_resized_u8", inputs.U8($"image_{k}_resized_u8"), resized.Rgb);
        }

        var result = processor.Process(images);
        AssertGrids(inputs.I64("image_grid_thw"), result.Grids);
        AssertClose($"{caseName} pixel_values", inputs.F32("pixel_values"), inputs.Shape("pixel_values"), result);
    }

    [Fact]
    public void VideoCase_FourPngFrames_ResizedBytesAndPixelValuesMatch()
    {
        const string caseName = "c_video_text";
        var inputs = new FixtureReader(FixtureReader.CaseFile(caseName, "inputs.safetensors"));
        var processor = Processor();
        var frames = Enumerable.Range(0, 4)
            .Select(i => RgbImage.Load(FixtureReader.CaseFile(caseName, $"video_0_frame_{i}.png")))
            .ToList();

        var expectedFrames = inputs.U8("video_0_resized_u8");
        var shape = inputs.Shape("video_0_resized_u8");
        Assert.Equal(4, shape[0]);
        int frameBytes = (int)(shape[1] * shape[2] * 3);
        for (int f = 0; f < frames.Count; f++)
        {
            var resized = processor.Resize(frames[f]);
            Assert.Equal((shape[1], shape[2]), ((long)resized.Height, (long)resized.Width));
            AssertBytesEqual($"video_0 frame {f}", expectedFrames.AsSpan(f * frameBytes, frameBytes).ToArray(), resized.Rgb);
        }

        var result = processor.ProcessVideos([frames]);
        AssertGrids(inputs.I64("video_grid_thw"), result.Grids);
        AssertClose($"{caseName} pixel_values_videos", inputs.F32("pixel_values_videos"), inputs.Shape("pixel_values_videos"), result);
    }

    [Fact]
    public void TextOnlyCase_HasNoVisualInputs()
    {
        var inputs = new FixtureReader(FixtureReader.CaseFile("d_text_only", "inputs.safetensors"));
        Assert.False(inputs.Contains("pixel_values"));
        Assert.False(inputs.Contains("pixel_values_videos"));
        var result = Processor().Process([]);
        Assert.Empty(result.PixelValues);
        Assert.Empty(result.Grids);
    }

    static void AssertGrids(long[] expected, IReadOnlyList<(int T, int H, int W)> actual)
    {
        var flat = actual.SelectMany(g => new long[] { g.T, g.H, g.W }).ToArray();
        Assert.Equal(expected, flat);
    }

    static void AssertBytesEqual(string name, byte[] expected, byte[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        int mismatches = 0, first = -1, maxDiff = 0;
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
            {
                mismatches++;
                if (first < 0) first = i;
                maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
            }
        Assert.True(mismatches == 0,
            $"{name}: {mismatches} of {expected.Length} bytes differ (max |diff| {maxDiff}), first at {first}: expected {(first >= 0 ? expected[first] : 0)}, got {(first >= 0 ? actual[first] : 0)}");
    }

    void AssertClose(string name, float[] expected, long[] shape, ProcessedVision actual)
    {
        Assert.Equal(new long[] { actual.PatchCount, actual.PatchDim }, shape);
        Assert.Equal(expected.Length, actual.PixelValues.Length);
        double maxDiff = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)expected[i] - actual.PixelValues[i]);
            if (d > maxDiff) { maxDiff = d; at = i; }
        }
        output.WriteLine($"{name} [{shape[0]}, {shape[1]}]: max |diff| = {maxDiff:G3} at row {at / shape[1]}, col {at % shape[1]}");
        Assert.True(maxDiff <= 1e-6,
            $"{name} [{shape[0]}, {shape[1]}]: max |diff| {maxDiff:G3} at row {at / shape[1]}, col {at % shape[1]} (expected {expected[at]}, got {actual.PixelValues[at]})");
    }
}
