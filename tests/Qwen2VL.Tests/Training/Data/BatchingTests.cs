using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Training.Data;
using Xunit;
using static Qwen2VL.Tests.Training.Data.TrainingDataTestSupport;

namespace Qwen2VL.Tests.Training.Data;

public sealed class BatchingTests
{
    [Theory]
    [InlineData(PadSide.Right)]
    [InlineData(PadSide.Left)]
    public void Collate_PadsIdsMaskAndLabels_OnTheChosenSide(PadSide side)
    {
        var a = WithImage("What is it?", "A cat.", 84, 56, 1);
        var b = TextOnly("hi", "hello there, how are you today?");
        var c = WithImage("Two?", "No.", 56, 56, 2);
        var samples = new[] { a, b, c };

        var batch = Batching.Collate(samples, side, EndOfText);

        int seq = samples.Max(s => s.Length);
        Assert.Equal((3, seq), (batch.Batch, batch.Seq));
        for (int row = 0; row < 3; row++)
        {
            var s = samples[row];
            int pad = seq - s.Length, start = side == PadSide.Left ? pad : 0;
            var ids = batch.InputIds.AsSpan(row * seq, seq);
            var mask = batch.AttentionMask!.AsSpan(row * seq, seq);
            var labels = batch.Labels!.AsSpan(row * seq, seq);
            Assert.Equal(s.Ids, ids.Slice(start, s.Length).ToArray());
            Assert.Equal(s.Labels, labels.Slice(start, s.Length).ToArray());
            for (int k = 0; k < seq; k++)
            {
                bool real = k >= start && k < start + s.Length;
                Assert.Equal(real ? 1 : 0, mask[k]);
                if (!real)
                {
                    Assert.Equal(EndOfText, ids[k]);
                    Assert.Equal(EncodedSample.IgnoreIndex, labels[k]);
                }
            }
        }
        // Images of rows 0 and 2, in row order; no videos.
        Assert.Equal([new GridThw(1, 4, 6), new GridThw(1, 4, 4)], batch.Images!.Grids);
        Assert.Equal(a.Images!.Rows + c.Images!.Rows, batch.Images.Rows);
        Assert.Equal(a.Images.PixelValues.Concat(c.Images.PixelValues), batch.Images.PixelValues);
        Assert.Null(batch.Videos);
    }

    [Fact]
    public void Collate_RightPadded_RopeIndexPositionsOfEachRowMatchTheRowAlone()
    {
        var a = WithImage("What is it?", "A cat.", 84, 56, 1);
        var b = TextOnly("hi", "hello there, how are you today?");

        var batch = Batching.Collate([a, b], PadSide.Left, EndOfText);
        var (pos, _) = RopeIndex.Compute(batch.InputIds, batch.AttentionMask, 2, batch.Seq, batch.Images!.Grids, [], VisionIds);
        var (alone, _) = RopeIndex.Compute(a.Ids, null, 1, a.Length, a.Images!.Grids, [], VisionIds);

        int pad = batch.Seq - a.Length;
        for (int axis = 0; axis < 3; axis++)
            Assert.Equal(alone.AsSpan(axis * a.Length, a.Length).ToArray(), pos.AsSpan((axis * 2) * batch.Seq + pad, a.Length).ToArray());
    }

    [Fact]
    public void Collate_EmptyOrInconsistent_Throws()
    {
        Assert.Throws<TrainingDataException>(() => Batching.Collate([], PadSide.Right, 0));
        var bad = new EncodedSample([1, 2], [1], null, null, "x:1");
        Assert.Equal("x:1: 2 ids but 1 labels", Assert.Throws<TrainingDataException>(() => Batching.Collate([bad], PadSide.Right, 0)).Message);
    }
}
