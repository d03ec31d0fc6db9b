using Qwen2VL.Model.Processing;
using Xunit;

namespace Qwen2VL.Tests.Processing;

public class VideoSamplingTests
{
    [Theory]
    // total frames, video fps, expected (default fps 2, min 4 frames, max min(768, total)).
    [InlineData(100, 25.0, 8)]     // 100/25·2 = 8
    [InlineData(30, 30.0, 4)]      // 2 -> raised to min_frames 4
    [InlineData(300, 30.0, 20)]    // 20
    [InlineData(90, 20.0, 8)]      // 9 -> 9/2 = 4.5 rounds half to even -> 4 -> 8
    [InlineData(110, 20.0, 12)]    // 11 -> 5.5 -> 6 -> 12
    [InlineData(3, 30.0, 2)]       // max_frames = floor(3/2)·2 = 2 caps the minimum
    [InlineData(4000, 1.0, 768)]   // capped at FPS_MAX_FRAMES
    public void SmartNFrames_FpsRule(int total, double videoFps, int expected)
    {
        Assert.Equal(expected, VideoSampling.SmartNFrames(total, videoFps, new VideoOptions()));
    }

    [Fact]
    public void SmartNFrames_Options()
    {
        Assert.Equal(10, VideoSampling.SmartNFrames(100, 25, new VideoOptions { Fps = 2.5 }));
        Assert.Equal(8, VideoSampling.SmartNFrames(100, 25, new VideoOptions { NFrames = 7 }));   // 3.5 -> 4
        Assert.Equal(4, VideoSampling.SmartNFrames(100, 25, new VideoOptions { NFrames = 5 }));   // 2.5 -> 2
        Assert.Equal(16, VideoSampling.SmartNFrames(100, 25, new VideoOptions { MinFrames = 15 })); // ceil to 16
        Assert.Equal(6, VideoSampling.SmartNFrames(100, 10, new VideoOptions { MaxFrames = 7 }));  // floor to 6
    }

    [Fact]
    public void SmartNFrames_Errors()
    {
        var both = Assert.Throws<PreprocessingException>(() =>
            VideoSampling.SmartNFrames(100, 25, new VideoOptions { Fps = 1, NFrames = 4 }, "'clip.gif'"));
        Assert.Contains("'clip.gif'", both.Message);
        var one = Assert.Throws<PreprocessingException>(() => VideoSampling.SmartNFrames(1, 10, new VideoOptions(), "'one.gif'"));
        Assert.Contains("'one.gif'", one.Message);
        Assert.Throws<PreprocessingException>(() => VideoSampling.SmartNFrames(10, 10, new VideoOptions { NFrames = 12 }));
    }

    [Fact]
    public void FrameIndices_LinspaceRoundedHalfToEven()
    {
        Assert.Equal(new[] { 0, 3, 6, 9 }, VideoSampling.FrameIndices(10, 4));
        Assert.Equal(new[] { 0, 2, 5 }, VideoSampling.FrameIndices(6, 3));    // 2.5 -> 2
        Assert.Equal(new[] { 0, 2, 3 }, VideoSampling.FrameIndices(4, 3));    // 1.5 -> 2
        Assert.Equal(new[] { 0, 33, 66, 99 }, VideoSampling.FrameIndices(100, 4));
        Assert.Equal(Enumerable.Range(0, 8).ToArray(), VideoSampling.FrameIndices(8, 8));
    }

    [Fact]
    public void FrameMaxPixels_Budget()
    {
        var o = new VideoOptions();
        Assert.Equal(602112, VideoSampling.FrameMaxPixels(64, o));           // capped by VIDEO_MAX_PIXELS
        Assert.Equal(19267584.0 / 100 * 2, VideoSampling.FrameMaxPixels(100, o));
        Assert.Equal(105369, VideoSampling.FrameMaxPixels(400, o));          // floor int(1.05·min_pixels)
        Assert.Equal(5000, VideoSampling.FrameMaxPixels(400, o with { MaxPixels = 5000 }));
    }

    [Fact]
    public void FrameSize_UsesBudgetOrExplicitSize()
    {
        var o = new VideoOptions();
        // 360x640 at 100 frames: budget 385351.68; round gives 364x644 = 234416, inside [100352, budget].
        Assert.Equal((364, 644), VideoSampling.FrameSize(360, 640, 100, o));
        // 1080x1920 at 64 frames: capped at 602112 -> beta = sqrt(2073600/602112).
        Assert.Equal((560, 1008), VideoSampling.FrameSize(1080, 1920, 64, o));
        Assert.Equal((224, 252), VideoSampling.FrameSize(1080, 1920, 64, o with { ResizedHeight = 230, ResizedWidth = 250 }));
        Assert.Throws<PreprocessingException>(() => VideoSampling.FrameSize(100, 100, 4, o with { ResizedHeight = 56 }));
    }
}
