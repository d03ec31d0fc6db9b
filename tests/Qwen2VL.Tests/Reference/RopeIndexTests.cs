using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reference;

public class RopeIndexTests
{
    private static readonly VisionTokenIds Ids = new(VisionStart: 500, Image: 502, Video: 503);

    [Fact]
    public void SpecWorkedExample_ImageBlockPositionsAndDelta()
    {
        // Spec §6.1: im_start, "user", "\n", vision_start, 6 × image_pad for grid (1, 4, 6), vision_end, text, im_end.
        long[] ids = [10, 11, 12, 500, 502, 502, 502, 502, 502, 502, 501, 13, 14];
        var (pos, delta) = RopeIndex.Compute(ids, null, 1, 13, [new GridThw(1, 4, 6)], [], Ids);
        long[] t = [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9];
        long[] h = [0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9];
        long[] w = [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9];
        Assert.Equal([.. t, .. h, .. w], pos);
        Assert.Equal([-3L], delta);
    }

    [Fact]
    public void Video_TemporalAxisStepsPerFramePair_AndLeftPaddingGetsOne()
    {
        // Row: 2 pads, text, vision_start, video grid (2, 2, 4) → merged (2, 1, 2) = 4 tokens, vision_end.
        long[] ids = [505, 505, 7, 500, 503, 503, 503, 503, 501];
        long[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 1];
        var (pos, delta) = RopeIndex.Compute(ids, mask, 1, 9, [], [new GridThw(2, 2, 4)], Ids);
        long[] t = [1, 1, 0, 1, 2, 2, 3, 3, 4];
        long[] h = [1, 1, 0, 1, 2, 2, 2, 2, 4];
        long[] w = [1, 1, 0, 1, 2, 3, 2, 3, 4];
        Assert.Equal([.. t, .. h, .. w], pos);
        Assert.Equal([4 + 1 - 9L], delta);   // max position 4, padded length 9
    }

    [Fact]
    public void TextOnly_IsCumsumOfMaskMinusOne_WithPaddingOne()
    {
        long[] ids = [505, 1, 2, 3, 4, 5, 6, 7];
        long[] mask = [0, 1, 1, 1, 1, 1, 1, 1];
        var (pos, delta) = RopeIndex.Compute(ids, mask, 2, 4, [], [], Ids);
        long[] row = [1, 0, 1, 2, 0, 1, 2, 3];
        Assert.Equal([.. row, .. row, .. row], pos);
        Assert.Equal([2 + 1 - 4L, 3 + 1 - 4L], delta);
        var (noMask, zero) = RopeIndex.Compute(ids, null, 2, 4, [], [], Ids);
        Assert.Equal([0L, 1, 2, 3, 0, 1, 2, 3], noMask[..8]);
        Assert.Equal([0L, 0], zero);
    }

    [Fact]
    public void TwoRows_ConsumeImageGridsInOrder()
    {
        long[] ids = [500, 502, 501, 9, 500, 502, 502, 501];
        var (pos, delta) = RopeIndex.Compute(ids, null, 2, 4, [new GridThw(1, 2, 2), new GridThw(1, 2, 4)], [], Ids);
        // Row 0: vs 0, image (1,1,1), ve 2, text 3. Row 1: vs 0, image (1,1,1),(1,1,2), ve 1 + max(1,1,2) = 3.
        Assert.Equal([0L, 1, 2, 3, 0, 1, 1, 3], pos[..8]);     // t
        Assert.Equal([0L, 1, 2, 3, 0, 1, 1, 3], pos[8..16]);   // h
        Assert.Equal([0L, 1, 2, 3, 0, 1, 2, 3], pos[16..]);    // w
        Assert.Equal([0L, 0], delta);
    }

    [Fact]
    public void TwoImagesInOneRow_AndImageThenVideo()
    {
        // vs, img (1,2,2), ve, vs, vid (1,2,2), ve, vs, img (1,2,4) ×2 tokens, ve
        long[] ids = [500, 502, 501, 500, 503, 501, 500, 502, 502, 501];
        var (pos, delta) = RopeIndex.Compute(ids, null, 1, 10, [new GridThw(1, 2, 2), new GridThw(1, 2, 4)], [new GridThw(1, 2, 2)], Ids);
        Assert.Equal([0L, 1, 2, 3, 4, 5, 6, 7, 7, 9], pos[..10]);
        Assert.Equal([0L, 1, 2, 3, 4, 5, 6, 7, 8, 9], pos[20..]);
        Assert.Equal([0L], delta);
    }

    [Fact]
    public void MoreImagesThanGrids_IsAModelError()
    {
        long[] ids = [500, 502, 501, 500, 502, 501];
        var e = Assert.Throws<ModelException>(() => RopeIndex.Compute(ids, null, 1, 6, [new GridThw(1, 2, 2)], [], Ids));
        Assert.Contains("image", e.Message);
    }
}
