using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

public class AttentionTests
{
    /// <summary>Softmax-weighted average of the given key rows, written out directly.</summary>
    private static double[] Attend(double[] q, IList<double[]> keys, IList<double[]> values)
    {
        double scale = 1 / Math.Sqrt(q.Length);
        var w = keys.Select(k => Math.Exp(scale * q.Zip(k, (a, b) => a * b).Sum())).ToArray();
        double z = w.Sum();
        var o = new double[q.Length];
        for (int j = 0; j < keys.Count; j++)
            for (int i = 0; i < o.Length; i++) o[i] += w[j] / z * values[j][i];
        return o;
    }

    private static double[] Mean(IList<double[]> rows) =>
        Enumerable.Range(0, rows[0].Length).Select(i => rows.Average(r => r[i])).ToArray();

    private static double[] Row(Tensor t, params int[] lead) =>
        Enumerable.Range(0, t.Shape[^1]).Select(i => t[[.. lead, i]]).ToArray();

    [Fact]
    public void Attention_SingleKeySegmentReturnsItsValue()
    {
        var q = TensorAssert.Random(1, 3, 2, 4);
        var k = TensorAssert.Random(2, 3, 2, 4);
        var v = TensorAssert.Random(3, 3, 2, 4);
        var y = Ops.Attention(q, k, v, Tensor.FromInt64([0, 1, 2, 3], 4));
        TensorAssert.Close(v.Data, y, 1e-15, 3, 2, 4);
    }

    [Fact]
    public void Attention_StaysInsideSegments()
    {
        var q = TensorAssert.Random(4, 5, 2, 4);
        var k = TensorAssert.Random(5, 5, 2, 4);
        var v = TensorAssert.Random(6, 5, 2, 4);
        var y = Ops.Attention(q, k, v, Tensor.FromInt64([0, 2, 5], 3));
        int[][] segments = [[0, 1], [2, 3, 4]];
        foreach (var seg in segments)
            foreach (int i in seg)
                for (int h = 0; h < 2; h++)
                {
                    var e = Attend(Row(q, i, h), seg.Select(j => Row(k, j, h)).ToList(), seg.Select(j => Row(v, j, h)).ToList());
                    TensorAssert.Close(e, Row(y, i, h), 1e-14);
                }
    }

    [Fact]
    public void Attention_RejectsBadSegments()
    {
        var t = Tensor.Zeros(3, 1, 2);
        var e = Assert.Throws<ArgumentException>(() => Ops.Attention(t, t, t, Tensor.FromInt64([0, 2], 2)));
        Assert.Contains("Attention", e.Message);
        Assert.Throws<ArgumentException>(() => Ops.Attention(t, Tensor.Zeros(3, 2, 2), t, Tensor.FromInt64([0, 3], 2)));
    }

    [Fact]
    public void CausalAttention_GroupsHeadsAndHonoursCausalAndPaddingMasks()
    {
        int b = 2, s = 4, heads = 4, kv = 2, d = 4;
        var q = TensorAssert.Random(7, b, s, heads, d);
        var k = TensorAssert.Random(8, b, s, kv, d);
        var v = TensorAssert.Random(9, b, s, kv, d);
        long[] maskRows = [1, 1, 1, 1, 0, 0, 1, 1]; // row 1 is left-padded by 2
        var y = Ops.CausalAttention(q, k, v, Tensor.FromInt64(maskRows, b, s));
        for (int bi = 0; bi < b; bi++)
            for (int i = 0; i < s; i++)
                for (int h = 0; h < heads; h++)
                {
                    var visible = Enumerable.Range(0, i + 1).Where(j => maskRows[bi * s + j] != 0).ToList();
                    // No visible key (left padding): the mean of v over the whole row, as transformers' eager
                    // softmax over all-float32-min scores gives.
                    var e = visible.Count == 0
                        ? Mean(Enumerable.Range(0, s).Select(j => Row(v, bi, j, h / 2)).ToList())
                        : Attend(Row(q, bi, i, h), visible.Select(j => Row(k, bi, j, h / 2)).ToList(),
                            visible.Select(j => Row(v, bi, j, h / 2)).ToList());
                    TensorAssert.Close(e, Row(y, bi, i, h), 1e-14, $"b{bi} i{i} h{h}");
                }
        // The first real token sees only itself: its output is its own value row.
        TensorAssert.Close(Row(v, 1, 2, 1), Row(y, 1, 2, 3), 1e-15);
    }

    [Fact]
    public void CausalAttention_RejectsUngroupableHeadsAndWrongMask()
    {
        var q = Tensor.Zeros(1, 2, 3, 4);
        var kv = Tensor.Zeros(1, 2, 2, 4);
        var e = Assert.Throws<ArgumentException>(() => Ops.CausalAttention(q, kv, kv, Tensor.FromInt64([1, 1], 1, 2)));
        Assert.Contains("CausalAttention", e.Message);
        var kv1 = Tensor.Zeros(1, 2, 1, 4);
        Assert.Throws<ArgumentException>(() => Ops.CausalAttention(q, kv1, kv1, Tensor.FromInt64([1, 1, 1], 1, 3)));
    }
}
