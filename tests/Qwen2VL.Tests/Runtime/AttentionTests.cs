using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public class AttentionTests
{
    private const double Tolerance = 1e-5;

    /// <summary>Softmax-weighted sum in double over the given keys (nothing written when none).</summary>
    private static void NaiveRow(float[] q, int queryAt, float[] k, float[] v, IReadOnlyList<int> keyAts, int headDim, double scale,
        double[] output, int outputAt)
    {
        if (keyAts.Count == 0) return;
        var scores = keyAts.Select(keyAt =>
        {
            double s = 0;
            for (int d = 0; d < headDim; d++) s += (double)q[queryAt + d] * k[keyAt + d];
            return s * scale;
        }).ToArray();
        double max = scores.Max();
        double[] p = scores.Select(s => Math.Exp(s - max)).ToArray();
        double sum = p.Sum();
        for (int d = 0; d < headDim; d++)
        {
            double o = 0;
            for (int j = 0; j < keyAts.Count; j++) o += p[j] / sum * v[keyAts[j] + d];
            output[outputAt + d] = o;
        }
    }

    /// <summary>Head dimension 24 with segments of 13 and 17 patches: the CPU kernel's eight-keys-at-a-time scoring and its remainder.</summary>
    [Theory]
    [InlineData(DeviceKind.Cpu, 5)]
    [InlineData(DeviceKind.IlgpuCpu, 5)]
    [InlineData(DeviceKind.Cpu, 24)]
    public void SegmentsAttendOnlyWithinTheirSegment(DeviceKind kind, int headDim)
    {
        const int heads = 2;
        int[] cu = headDim == 5 ? [0, 4, 4, 9, 11] : [0, 13, 13, 30, 31]; // includes an empty segment
        int n = cu[^1];
        float scale = 1f / MathF.Sqrt(headDim);
        float[] q = Reference.Random(n * heads * headDim, 21, 2f), k = Reference.Random(n * heads * headDim, 22, 2f),
            v = Reference.Random(n * heads * headDim, 23);

        var expected = new double[n * heads * headDim];
        for (int s = 0; s + 1 < cu.Length; s++)
            for (int i = cu[s]; i < cu[s + 1]; i++)
                for (int h = 0; h < heads; h++)
                {
                    var keys = Enumerable.Range(cu[s], cu[s + 1] - cu[s]).Select(j => (j * heads + h) * headDim).ToList();
                    NaiveRow(q, (i * heads + h) * headDim, k, v, keys, headDim, scale, expected, (i * heads + h) * headDim);
                }

        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor tq = ctx.Upload(q, n, heads, headDim), tk = ctx.Upload(k, n, heads, headDim),
            tv = ctx.Upload(v, n, heads, headDim), to = ctx.Allocate(n, heads, headDim), tcu = ctx.UploadInt(cu, cu.Length);
        ctx.AttentionSegments(tq, tk, tv, to, tcu, n, heads, headDim, scale);
        Reference.AssertClose($"segment attention {kind}", expected, ctx.Download(to), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu, ComputeContext.CausalKernel.Auto)]
    [InlineData(DeviceKind.IlgpuCpu, ComputeContext.CausalKernel.ThreadPerQuery)]
    [InlineData(DeviceKind.IlgpuCpu, ComputeContext.CausalKernel.WarpPerQuery)]
    internal void CausalWithGroupedKvHeadsAndPaddingMask(DeviceKind kind, ComputeContext.CausalKernel kernel)
    {
        const int batch = 2, seq = 6, heads = 4, kvHeads = 2, headDim = 8;
        // Batch 0 is left-padded by two tokens (its first queries see no key); batch 1 has a hole at position 3.
        int[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1];
        float scale = 1f / MathF.Sqrt(headDim);
        float[] q = Reference.Random(batch * seq * heads * headDim, 31, 2f);
        float[] k = Reference.Random(batch * seq * kvHeads * headDim, 32, 2f);
        float[] v = Reference.Random(batch * seq * kvHeads * headDim, 33);

        var expected = new double[q.Length];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < seq; i++)
                for (int h = 0; h < heads; h++)
                {
                    int kvh = h / (heads / kvHeads);
                    var visible = Enumerable.Range(0, i + 1).Where(j => mask[b * seq + j] != 0).ToList();
                    // No visible key: transformers' eager softmax over all-float32-min scores is uniform over the
                    // whole row, which equal scores (q = 0 against every key) reproduce.
                    var keys = (visible.Count > 0 ? visible : Enumerable.Range(0, seq))
                        .Select(j => ((b * seq + j) * kvHeads + kvh) * headDim).ToList();
                    int at = ((b * seq + i) * heads + h) * headDim;
                    NaiveRow(visible.Count > 0 ? q : new float[q.Length], at, k, v, keys, headDim, scale, expected, at);
                }

        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor tq = ctx.Upload(q, batch, seq, heads, headDim), tk = ctx.Upload(k, batch, seq, kvHeads, headDim),
            tv = ctx.Upload(v, batch, seq, kvHeads, headDim), to = ctx.Upload(Reference.Random(q.Length, 34), batch, seq, heads, headDim),
            tm = ctx.UploadInt(mask, batch, seq);
        if (kernel == ComputeContext.CausalKernel.Auto)
            ctx.AttentionCausal(tq, tk, tv, to, tm, batch, seq, heads, kvHeads, headDim, scale);
        else
            ctx.AttentionCausalCached(tq, tk, tv, to, tm, batch, seq, seq, seq, heads, kvHeads, headDim, scale, kernel);
        float[] actual = ctx.Download(to);
        Reference.AssertClose($"causal attention {kind} {kernel}", expected, actual, Tolerance);
        // A fully padded query row (batch 0, position 0, head 0) is the mean of kv head 0's values over all 6
        // positions, padded ones included.
        for (int d = 0; d < headDim; d++)
        {
            double mean = Enumerable.Range(0, seq).Average(j => (double)v[(j * kvHeads) * headDim + d]);
            Assert.True(Math.Abs(actual[d] - mean) <= Tolerance, $"padded row dim {d}: {actual[d]} vs mean {mean}");
        }
    }

    /// <summary>
    /// A decode step over a cache as continuous batching runs it: one query per row, rows with different masked-out
    /// prefixes (sequences of different lengths) and one free row (no visible key), enough keys that the CPU kernel's
    /// eight-keys-at-a-time scoring and its remainder both run, a head dimension of 24 (the default model's), and
    /// batches small and large enough for both of its work splits (per KV head, and per row).
    /// </summary>
    [Theory]
    [InlineData(DeviceKind.Cpu, 1, 24)]
    [InlineData(DeviceKind.Cpu, 40, 24)]
    [InlineData(DeviceKind.Cpu, 40, 12)]
    [InlineData(DeviceKind.IlgpuCpu, 5, 24)]
    internal void CachedDecodeStepOfRowsOfDifferentLengths(DeviceKind kind, int batch, int headDim)
    {
        const int heads = 4, kvHeads = 2, capacity = 48, keyLength = 43;
        float scale = 1f / MathF.Sqrt(headDim);
        var mask = new int[batch * capacity];
        for (int b = 0; b < batch; b++)
        {
            int length = b == batch - 1 && batch > 1 ? 0 : 1 + (b * 17 + 5) % keyLength;   // the last row is free
            for (int j = keyLength - length; j < keyLength; j++) mask[b * capacity + j] = 1;
        }
        float[] q = Reference.Random(batch * heads * headDim, 41, 2f);
        float[] k = Reference.Random(batch * capacity * kvHeads * headDim, 42, 2f);
        float[] v = Reference.Random(batch * capacity * kvHeads * headDim, 43);

        var expected = new double[q.Length];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads);
                var visible = Enumerable.Range(0, keyLength).Where(j => mask[b * capacity + j] != 0).ToList();
                var keys = (visible.Count > 0 ? visible : Enumerable.Range(0, keyLength))
                    .Select(j => ((b * capacity + j) * kvHeads + kvh) * headDim).ToList();
                int at = (b * heads + h) * headDim;
                NaiveRow(visible.Count > 0 ? q : new float[q.Length], at, k, v, keys, headDim, scale, expected, at);
            }

        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor tq = ctx.Upload(q, batch, 1, heads, headDim), tk = ctx.Upload(k, batch, capacity, kvHeads, headDim),
            tv = ctx.Upload(v, batch, capacity, kvHeads, headDim), to = ctx.Upload(Reference.Random(q.Length, 44), batch, 1, heads, headDim),
            tm = ctx.UploadInt(mask, batch, capacity);
        ctx.AttentionCausalCached(tq, tk, tv, to, tm, batch, 1, keyLength, capacity, heads, kvHeads, headDim, scale);
        Reference.AssertClose($"cached decode step {kind} batch {batch} head dim {headDim}", expected, ctx.Download(to), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu, 1, 7, ComputeContext.CausalKernel.Auto)]
    [InlineData(DeviceKind.Cpu, 3, 7, ComputeContext.CausalKernel.Auto)]
    [InlineData(DeviceKind.IlgpuCpu, 1, 7, ComputeContext.CausalKernel.ThreadPerQuery)]
    [InlineData(DeviceKind.IlgpuCpu, 2, 7, ComputeContext.CausalKernel.ThreadPerQuery)]
    [InlineData(DeviceKind.IlgpuCpu, 1, 7, ComputeContext.CausalKernel.WarpPerQuery)]
    [InlineData(DeviceKind.IlgpuCpu, 3, 7, ComputeContext.CausalKernel.WarpPerQuery)]
    [InlineData(DeviceKind.IlgpuCpu, 1, 75, ComputeContext.CausalKernel.WarpPerQuery)] // several keys per lane
    internal void CachedQueriesSeeThePrefixOfTheKvCache(DeviceKind kind, int queryLength, int keyLength, ComputeContext.CausalKernel kernel)
    {
        const int batch = 2, heads = 4, kvHeads = 1, headDim = 6;
        int capacity = keyLength + 2;
        // Batch 0 left-padded by one token, batch 1 has a hole at position 2; positions ≥ keyLength are
        // unused cache slots holding garbage.
        int[] mask = Enumerable.Range(0, batch * capacity).Select(x => x == 0 || x == capacity + 2 ? 0 : 1).ToArray();
        float scale = 0.4f;
        float[] q = Reference.Random(batch * queryLength * heads * headDim, 41, 2f);
        float[] k = Reference.Random(batch * capacity * kvHeads * headDim, 42, 2f);
        float[] v = Reference.Random(batch * capacity * kvHeads * headDim, 43);

        var expected = new double[q.Length];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < queryLength; i++)
                for (int h = 0; h < heads; h++)
                {
                    int position = keyLength - queryLength + i;
                    var keys = Enumerable.Range(0, position + 1).Where(j => mask[b * capacity + j] != 0)
                        .Select(j => ((b * capacity + j) * kvHeads + h / (heads / kvHeads)) * headDim).ToList();
                    int at = ((b * queryLength + i) * heads + h) * headDim;
                    NaiveRow(q, at, k, v, keys, headDim, scale, expected, at);
                }

        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor tq = ctx.Upload(q, batch, queryLength, heads, headDim), tk = ctx.Upload(k, batch, capacity, kvHeads, headDim),
            tv = ctx.Upload(v, batch, capacity, kvHeads, headDim), to = ctx.Allocate(batch, queryLength, heads, headDim),
            tm = ctx.UploadInt(mask, batch, capacity);
        ctx.AttentionCausalCached(tq, tk, tv, to, tm, batch, queryLength, keyLength, capacity, heads, kvHeads, headDim, scale, kernel);
        Reference.AssertClose($"cached causal attention {kind} {kernel} q={queryLength}", expected, ctx.Download(to), Tolerance);
    }

    [Fact]
    public void SegmentsRejectMalformedCuSeqlensOnCpu()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor t = ctx.Allocate(3, 1, 2), cu = ctx.UploadInt([0, 2], 2);
        Assert.Contains("end at n = 3", Assert.Throws<ArgumentException>(() => ctx.AttentionSegments(t, t, t, t, cu, 3, 1, 2, 1f)).Message);
    }
}
