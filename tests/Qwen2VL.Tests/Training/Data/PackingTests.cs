using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Training.Data;
using Xunit;
using static Qwen2VL.Tests.Training.Data.TrainingDataTestSupport;

namespace Qwen2VL.Tests.Training.Data;

public sealed class PackingTests
{
    private static readonly EncodedSample[] Samples =
    [
        WithImage("What is it?", "A cat.", 84, 56, 1),
        TextOnly("hi", "hello"),
        WithImage("Which one?", "The left one.", 56, 84, 2),
        TextOnly("Count to three.", "one two three"),
        WithImage("Colour?", "red", 56, 56, 3),
    ];

    [Fact]
    public void Pack_FirstFit_KeepsOrderAndBudget()
    {
        int budget = Samples[0].Length + Samples[1].Length + 2;

        var rows = Packing.Pack(Samples, budget);

        Assert.All(rows, r => Assert.True(r.Length <= budget));
        Assert.Equal(Samples.Length, rows.Sum(r => r.Samples.Count));
        Assert.Same(Samples[0], rows[0].Samples[0]);
        Assert.Same(Samples[1], rows[0].Samples[1]);
        // Every sample appears once, and within each row in input order.
        var flat = rows.SelectMany(r => r.Samples).ToList();
        Assert.Equal(Samples.Length, flat.Distinct().Count());
        foreach (var r in rows)
            Assert.True(r.Samples.Select(s => Array.IndexOf(Samples, s)).SequenceEqual(r.Samples.Select(s => Array.IndexOf(Samples, s)).Order()));
        Assert.True(rows.Count < Samples.Length);
    }

    [Fact]
    public void ToInputs_SegmentIdsLabelsAndPositionsRestartPerSample()
    {
        var rows = Packing.Pack(Samples, 160);
        Assert.True(rows.Any(r => r.Samples.Count >= 2), "the budget should pack several samples into a row");

        var packed = Packing.ToInputs(rows, EndOfText);
        var pos = PackedRopeIndex.Compute(packed, VisionIds);

        int seq = packed.Seq, batch = packed.Batch;
        Assert.Equal(rows.Max(r => r.Length), seq);
        var expectedGrids = rows.SelectMany(r => r.Samples).SelectMany(s => s.Images?.Grids ?? []).ToList();
        Assert.Equal(expectedGrids, packed.Images!.Grids);
        for (int b = 0; b < batch; b++)
        {
            int offset = 0;
            for (int k = 0; k < rows[b].Samples.Count; k++)
            {
                var s = rows[b].Samples[k];
                int at = b * seq + offset;
                Assert.Equal(s.Ids, packed.InputIds.AsSpan(at, s.Length).ToArray());
                Assert.All(packed.AttentionMask!.AsSpan(at, s.Length).ToArray(), m => Assert.Equal(k + 1, m));
                // The first label of each segment is dropped; the rest are the sample's own.
                Assert.Equal(EncodedSample.IgnoreIndex, packed.Labels![at]);
                Assert.Equal(s.Labels[1..], packed.Labels.AsSpan(at + 1, s.Length - 1).ToArray());
                // Positions: exactly RopeIndex on the sample alone.
                var (alone, _) = RopeIndex.Compute(s.Ids, null, 1, s.Length, s.Images?.Grids ?? [], [], VisionIds);
                for (int axis = 0; axis < 3; axis++)
                    Assert.Equal(alone.AsSpan(axis * s.Length, s.Length).ToArray(),
                        pos.AsSpan((axis * batch + b) * seq + offset, s.Length).ToArray());
                Assert.Equal(0, pos[(0 * batch + b) * seq + offset]);
                offset += s.Length;
            }
            for (int p = offset; p < seq; p++)
            {
                Assert.Equal(0, packed.AttentionMask![b * seq + p]);
                Assert.Equal(EndOfText, packed.InputIds[b * seq + p]);
                Assert.Equal(EncodedSample.IgnoreIndex, packed.Labels![b * seq + p]);
                for (int axis = 0; axis < 3; axis++) Assert.Equal(1, pos[(axis * batch + b) * seq + p]);
            }
        }
    }

    [Fact]
    public void PackedRopeIndex_SpatialPositionsOfAnImageInASecondSegment_StartAtTheSegmentsOwnTextLength()
    {
        var text = TextOnly("hi", "hello");
        var image = WithImage("x", "y", 84, 56, 4);       // merged grid 2 x 3
        var packed = Packing.ToInputs([new PackedRow([text, image])], EndOfText);

        var pos = PackedRopeIndex.Compute(packed, VisionIds);

        int firstPad = Array.IndexOf(packed.InputIds, ImagePad);
        int textBefore = firstPad - text.Length;           // tokens of the image sample before its pads
        int seq = packed.Seq;
        // Pads in row-major (h, w) order: t = start; h = start + row; w = start + column.
        for (int k = 0; k < 6; k++)
        {
            Assert.Equal(textBefore, pos[firstPad + k]);
            Assert.Equal(textBefore + k / 3, pos[seq + firstPad + k]);
            Assert.Equal(textBefore + k % 3, pos[2 * seq + firstPad + k]);
        }
    }

    [Fact]
    public void ToInputs_FullySupervisedSamples_FirstLabelOfEverySegmentIsDropped()
    {
        // Labels equal to ids everywhere, so only the packing rule can put −100 at segment starts.
        EncodedSample Plain(params long[] ids) => new(ids, (long[])ids.Clone(), null, null);
        var rows = Packing.Pack([Plain(10, 11, 12), Plain(20, 21), Plain(30, 31, 32, 33)], 6);

        var packed = Packing.ToInputs(rows, 0);

        Assert.Equal((2, 5), (packed.Batch, packed.Seq));
        Assert.Equal([10, 11, 12, 20, 21, 30, 31, 32, 33, 0], packed.InputIds);
        Assert.Equal([1, 1, 1, 2, 2, 1, 1, 1, 1, 0], packed.AttentionMask!);
        Assert.Equal([-100, 11, 12, -100, 21, -100, 31, 32, 33, -100], packed.Labels!);
        Assert.Equal([0, 1, 2, 0, 1, 0, 1, 2, 3, 1], PackedRopeIndex.Compute(packed, VisionIds).AsSpan(0, 10).ToArray());
    }

    [Fact]
    public void Pack_SampleLongerThanTheBudget_NamesIt()
    {
        var e = Assert.Throws<TrainingDataException>(() => Packing.Pack(Samples, 10));

        Assert.Equal($"sample: {Samples[0].Length} tokens do not fit the packing budget of 10", e.Message);
    }
}
