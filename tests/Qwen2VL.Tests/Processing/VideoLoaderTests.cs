using Qwen2VL.Model.Processing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Qwen2VL.Tests.Processing;

public sealed class VideoLoaderTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-video-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Frame(int i) => FixtureReader.CaseFile("c_video_text", $"video_0_frame_{i}.png");

    /// <summary>An animated GIF whose frame k is a solid grey of level 20·k, each frame shown delay/100 s.</summary>
    string WriteGif(int frames, int delayCentiseconds, int width = 64, int height = 48)
    {
        using var gif = new Image<Rgb24>(width, height, new Rgb24(0, 0, 0));
        for (int k = 1; k < frames; k++)
        {
            using var frame = new Image<Rgb24>(width, height, new Rgb24((byte)(20 * k), (byte)(20 * k), (byte)(20 * k)));
            gif.Frames.AddFrame(frame.Frames.RootFrame);
        }
        for (int k = 0; k < frames; k++)
            gif.Frames[k].Metadata.GetGifMetadata().FrameDelay = delayCentiseconds;
        string path = Path.Combine(_dir, $"clip{frames}_{delayCentiseconds}.gif");
        gif.SaveAsGif(path, new GifEncoder { ColorTableMode = GifColorTableMode.Local });
        return path;
    }

    static int Level(RgbImage frame) => frame.Rgb[frame.Rgb.Length / 2];

    [Fact]
    public void FrameFiles_FixtureCaseC_GivesFixturePixelValues()
    {
        // qwen-vl-utils path for a list of frames: each frame via fetch_image (no sampling), then the processor.
        var frames = VideoLoader.LoadFrameFiles([Frame(0), Frame(1), Frame(2), Frame(3)]);
        Assert.Equal(4, frames.Count);
        var inputs = new FixtureReader(FixtureReader.CaseFile("c_video_text", "inputs.safetensors"));
        var processor = ImageProcessor.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "preprocessor_config.json"));
        var result = processor.ProcessVideos([frames]);
        var expected = inputs.F32("pixel_values_videos");
        Assert.Equal(expected.Length, result.PixelValues.Length);
        double maxDiff = expected.Select((v, i) => Math.Abs((double)v - result.PixelValues[i])).Max();
        Assert.True(maxDiff <= 1e-6, $"pixel_values_videos max |diff| {maxDiff}");
    }

    [Fact]
    public void FrameFiles_OddCount_RepeatsLastFrame()
    {
        var frames = VideoLoader.LoadFrameFiles([Frame(0), Frame(1), Frame(2)]);
        Assert.Equal(4, frames.Count);
        Assert.Equal(frames[2].Rgb, frames[3].Rgb);
        Assert.NotEqual(frames[1].Rgb, frames[2].Rgb);
    }

    [Fact]
    public void FrameFiles_PixelOptionsResizeEachFrame()
    {
        var frames = VideoLoader.LoadFrameFiles([Frame(0), Frame(1)], new ImageFetchOptions { MinPixels = 112 * 112 });
        Assert.All(frames, f => Assert.Equal((112, 112), (f.Height, f.Width)));
        var explicitSize = VideoLoader.LoadFrameFiles([Frame(0)], new ImageFetchOptions { ResizedHeight = 80, ResizedWidth = 60 });
        Assert.Equal((84, 56), (explicitSize[0].Height, explicitSize[0].Width));
    }

    [Fact]
    public void Gif_DefaultFps_SamplesLinspaceFramesAtFrameBudget()
    {
        // 10 frames at 10 fps = 1 s -> 2 frames at fps 2 -> raised to min 4; linspace(0, 9, 4) = 0, 3, 6, 9.
        var frames = VideoLoader.LoadGif(WriteGif(10, 10));
        Assert.Equal(new[] { 0, 60, 120, 180 }, frames.Select(Level).ToArray());
        // 48x64 is below VIDEO_MIN_PIXELS, so it is scaled up to 280x392.
        Assert.All(frames, f => Assert.Equal((280, 392), (f.Height, f.Width)));
    }

    [Fact]
    public void Gif_FrameRateFromDelays_AndNFramesOption()
    {
        // 10 frames at 2 fps = 5 s -> 10 frames at fps 2: every frame.
        var all = VideoLoader.LoadGif(WriteGif(10, 50));
        Assert.Equal(Enumerable.Range(0, 10).Select(k => 20 * k).ToArray(), all.Select(Level).ToArray());

        var six = VideoLoader.LoadGif(WriteGif(12, 10), new VideoOptions { NFrames = 6, ResizedHeight = 56, ResizedWidth = 56 });
        // linspace(0, 11, 6) = 0, 2.2, 4.4, 6.6, 8.8, 11.
        Assert.Equal(new[] { 0, 40, 80, 140, 180, 220 }, six.Select(Level).ToArray());
        Assert.All(six, f => Assert.Equal((56, 56), (f.Height, f.Width)));
    }

    [Fact]
    public void Gif_Errors_NameTheFile()
    {
        var notGif = Assert.Throws<PreprocessingException>(() => VideoLoader.LoadGif(Frame(0)));
        Assert.Contains(Frame(0), notGif.Message);
        string single = WriteGif(1, 10);
        var tooShort = Assert.Throws<PreprocessingException>(() => VideoLoader.LoadGif(single));
        Assert.Contains(single, tooShort.Message);
        var missing = Assert.Throws<PreprocessingException>(() => VideoLoader.LoadGif(Path.Combine(_dir, "none.gif")));
        Assert.Contains("none.gif", missing.Message);
    }
}
