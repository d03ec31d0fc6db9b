using Qwen2VL.Model.Processing;
using Xunit;

namespace Qwen2VL.Tests.Processing;

public class VisionGeometryTests
{
    [Fact]
    public void RotaryPositions_Grid1x4x6_FollowsMergeWindowOrder()
    {
        // Spec §12 item 2.
        var pos = VisionGeometry.RotaryPositions([(1, 4, 6)], 2);
        Assert.Equal(24 * 2, pos.Length);
        int[] expectedStart = [0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3, 0, 4, 0, 5, 1, 4, 1, 5, 2, 0];
        Assert.Equal(expectedStart, pos[..expectedStart.Length]);
        Assert.Equal(new[] { 3, 5 }, pos[^2..]);
    }

    [Fact]
    public void RotaryPositions_RepeatPerTemporalBlockAndConcatenateItems()
    {
        var pos = VisionGeometry.RotaryPositions([(2, 2, 4), (1, 2, 2)], 2);
        Assert.Equal((16 + 4) * 2, pos.Length);
        Assert.Equal(pos[..16], pos[16..32]);
        Assert.Equal(new[] { 0, 0, 0, 1, 1, 0, 1, 1 }, pos[32..]);
    }

    [Fact]
    public void RotaryPositions_MatchPatchFlattenerRows()
    {
        // Build a frame whose pixel values encode their own (row, col), flatten it, and read each row's
        // first pixel back: it must sit at (14·h, 14·w) for the (h, w) the geometry gives that row.
        const int h = 56, w = 84, p = 14;
        var frame = new float[3 * h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                frame[y * w + x] = y * 1000 + x;
        var dst = new float[(h / p) * (w / p) * 3 * 2 * p * p];
        PatchFlattener.Flatten([frame, frame], h, w, p, 2, 2, dst);

        var pos = VisionGeometry.RotaryPositions([(1, h / p, w / p)], 2);
        for (int r = 0; r < pos.Length / 2; r++)
            Assert.Equal(pos[2 * r] * p * 1000 + pos[2 * r + 1] * p, dst[r * 3 * 2 * p * p]);
    }

    [Fact]
    public void CuSeqlens_OneSegmentPerTemporalBlock()
    {
        // Spec §12 item 5.
        Assert.Equal(new[] { 0, 256, 280, 304, 328 }, VisionGeometry.CuSeqlens([(1, 16, 16), (3, 4, 6)]));
        Assert.Equal(new[] { 0 }, VisionGeometry.CuSeqlens([]));
    }

    [Fact]
    public void InvalidGrid_Throws()
    {
        var e = Assert.Throws<PreprocessingException>(() => VisionGeometry.RotaryPositions([(1, 3, 4)], 2));
        Assert.Contains("h=3", e.Message);
        Assert.Throws<PreprocessingException>(() => VisionGeometry.CuSeqlens([(0, 4, 4)]));
    }
}
