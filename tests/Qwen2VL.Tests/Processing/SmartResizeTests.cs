using Qwen2VL.Model.Processing;
using Xunit;

namespace Qwen2VL.Tests.Processing;

public class SmartResizeTests
{
    const int RepoMin = 3136, RepoMax = 12845056;

    [Theory]
    // Spec §3.1 worked examples (HF rule, repo defaults).
    [InlineData(224, 224, 224, 224)]
    [InlineData(480, 640, 476, 644)]
    [InlineData(1080, 1920, 1092, 1932)]
    [InlineData(4000, 6000, 2912, 4368)]
    [InlineData(50, 50, 56, 56)]
    // Python round() is half-to-even: 70/28 = 2.5 -> 2, 98/28 = 3.5 -> 4.
    [InlineData(70, 70, 56, 56)]
    [InlineData(98, 98, 112, 112)]
    [InlineData(70, 98, 56, 112)]
    public void Compute_MatchesSpecTable(int h, int w, int eh, int ew)
    {
        Assert.Equal((eh, ew), SmartResize.Compute(h, w, 28, RepoMin, RepoMax));
    }

    [Fact]
    public void Compute_SpecTableGridsAndTokenCounts()
    {
        (int H, int W, int Patches, int Tokens)[] rows =
            [(224, 224, 256, 64), (480, 640, 1564, 391), (1080, 1920, 10764, 2691), (4000, 6000, 64896, 16224), (50, 50, 16, 4)];
        foreach (var (h, w, patches, tokens) in rows)
        {
            var (rh, rw) = SmartResize.Compute(h, w, 28, RepoMin, RepoMax);
            Assert.Equal(patches, rh / 14 * (rw / 14));
            Assert.Equal(tokens, patches / 4);
        }
    }

    [Theory]
    // Fixture cases (min 3136, max 9408): a downscale, an upscale by min_pixels, a downscale by max_pixels.
    [InlineData(90, 60, 84, 56)]
    [InlineData(40, 52, 56, 84)]
    [InlineData(100, 150, 56, 112)]
    [InlineData(56, 56, 56, 56)]
    public void Compute_FixtureSizes(int h, int w, int eh, int ew)
    {
        Assert.Equal((eh, ew), SmartResize.Compute(h, w, 28, 3136, 9408));
    }

    [Fact]
    public void Compute_TooSmall_NamesTheSize()
    {
        var e = Assert.Throws<PreprocessingException>(() => SmartResize.Compute(27, 100, 28, RepoMin, RepoMax));
        Assert.Contains("27x100", e.Message);
    }

    [Fact]
    public void Compute_AspectRatioAbove200_NamesTheSize()
    {
        var e = Assert.Throws<PreprocessingException>(() => SmartResize.Compute(28, 5629, 28, RepoMin, RepoMax));
        Assert.Contains("28x5629", e.Message);
        Assert.Contains("200", e.Message);
        // Exactly 200 is allowed.
        Assert.Equal((28, 5600), SmartResize.Compute(28, 5600, 28, RepoMin, RepoMax));
    }

    [Fact]
    public void Compute_ResultWouldBeEmpty_Throws()
    {
        // 28x5000 under a 9408-pixel budget floors the short side to 0; Python would fail later, we say why now.
        var e = Assert.Throws<PreprocessingException>(() => SmartResize.Compute(28, 5000, 28, 3136, 9408));
        Assert.Contains("28x5000", e.Message);
    }

    [Fact]
    public void QwenVlUtils_NoLowerSizeErrorAndAtLeastOneFactor()
    {
        // 10x30: HF refuses it; qwen-vl-utils rounds each side to at least 28, then min_pixels scales it up (values from Python).
        Assert.Throws<PreprocessingException>(() => SmartResize.Compute(10, 30, 28, RepoMin, RepoMax));
        Assert.Equal((56, 112), SmartResize.ComputeQwenVlUtils(10, 30, 28, RepoMin, RepoMax));
        Assert.Equal((28, 28), SmartResize.ComputeQwenVlUtils(10, 10, 28, 0, RepoMax));
    }

    [Fact]
    public void Compute_FractionalMaxPixels_UsedAsIs()
    {
        // A video budget like total_pixels/n·2 is a float: 640x480 under 301056.5 pixels.
        var (h, w) = SmartResize.Compute(480, 640, 28, 100352, 301056.5);
        Assert.True(h * w <= 301056.5);
        Assert.Equal((448, 616), (h, w));
    }
}
