using Qwen2VL.Runtime;
using Xunit;
using static Qwen2VL.Tests.Training.Kernels.AttentionBackwardTests;

namespace Qwen2VL.Tests.Training.Kernels;

using Reference = Qwen2VL.Tests.Runtime.Reference;

/// <summary>
/// Segment ids in the causal mask: two samples packed into one row (ids 1 and 2, then a padding position) must
/// give the same outputs and gradients as running each sample alone.
/// </summary>
public class PackedAttentionTests
{
    private const int Seq = 8, Heads = 4, KvHeads = 2, HeadDim = 8, LengthA = 3, LengthB = 4;
    private const double Tolerance = 1e-6;
    private static readonly int[] PackedMask = [1, 1, 1, 2, 2, 2, 2, 0];

    [Theory]
    [InlineData(DeviceKind.Cpu, ComputeContext.CausalKernel.Auto)]
    [InlineData(DeviceKind.IlgpuCpu, ComputeContext.CausalKernel.ThreadPerQuery)]
    [InlineData(DeviceKind.IlgpuCpu, ComputeContext.CausalKernel.WarpPerQuery)]
    internal void PackedForwardEqualsSeparateSamples(DeviceKind kind, ComputeContext.CausalKernel kernel)
    {
        var (q, k, v, _, scale) = CausalInputs(1, Seq, Heads, KvHeads, HeadDim, 71);
        using ComputeContext ctx = ComputeContext.Create(kind);
        float[] packed = CausalForward(ctx, q, k, v, PackedMask, 1, Seq, Heads, KvHeads, HeadDim, scale, kernel);
        float[] a = CausalForward(ctx, Rows(q, 0, LengthA, Heads), Rows(k, 0, LengthA, KvHeads), Rows(v, 0, LengthA, KvHeads),
            Ones(LengthA), 1, LengthA, Heads, KvHeads, HeadDim, scale, kernel);
        float[] b = CausalForward(ctx, Rows(q, LengthA, LengthB, Heads), Rows(k, LengthA, LengthB, KvHeads), Rows(v, LengthA, LengthB, KvHeads),
            Ones(LengthB), 1, LengthB, Heads, KvHeads, HeadDim, scale, kernel);
        Reference.AssertClose($"packed sample A {kind} {kernel}", ToDouble(a), Rows(packed, 0, LengthA, Heads), Tolerance);
        Reference.AssertClose($"packed sample B {kind} {kernel}", ToDouble(b), Rows(packed, LengthA, LengthB, Heads), Tolerance);

        // The KV-cache form: the last three positions as queries over a cache with spare capacity.
        const int queries = 3, capacity = Seq + 2;
        int row = KvHeads * HeadDim;
        var kCache = new float[capacity * row];
        var vCache = new float[capacity * row];
        k.CopyTo(kCache, 0);
        v.CopyTo(vCache, 0);
        var maskCache = new int[capacity];
        PackedMask.CopyTo(maskCache, 0);
        using DeviceTensor tq = ctx.Upload(Rows(q, Seq - queries, queries, Heads), 1, queries, Heads, HeadDim),
            tk = ctx.Upload(kCache, 1, capacity, KvHeads, HeadDim), tv = ctx.Upload(vCache, 1, capacity, KvHeads, HeadDim),
            to = ctx.Allocate(1, queries, Heads, HeadDim), tm = ctx.UploadInt(maskCache, 1, capacity);
        ctx.AttentionCausalCached(tq, tk, tv, to, tm, 1, queries, Seq, capacity, Heads, KvHeads, HeadDim, scale, kernel);
        Reference.AssertClose($"packed cached {kind} {kernel}", ToDouble(Rows(packed, Seq - queries, queries, Heads)), ctx.Download(to), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void PackedBackwardEqualsSeparateSamples(DeviceKind kind)
    {
        var (q, k, v, dOut, scale) = CausalInputs(1, Seq, Heads, KvHeads, HeadDim, 81);
        Array.Clear(dOut, (Seq - 1) * Heads * HeadDim, Heads * HeadDim); // the padding position carries no loss
        using ComputeContext ctx = ComputeContext.Create(kind);
        var packed = CausalBackward(ctx, q, k, v, dOut, PackedMask, 1, Seq, Heads, KvHeads, HeadDim, scale);
        var a = CausalBackward(ctx, Rows(q, 0, LengthA, Heads), Rows(k, 0, LengthA, KvHeads), Rows(v, 0, LengthA, KvHeads),
            Rows(dOut, 0, LengthA, Heads), Ones(LengthA), 1, LengthA, Heads, KvHeads, HeadDim, scale);
        var b = CausalBackward(ctx, Rows(q, LengthA, LengthB, Heads), Rows(k, LengthA, LengthB, KvHeads), Rows(v, LengthA, LengthB, KvHeads),
            Rows(dOut, LengthA, LengthB, Heads), Ones(LengthB), 1, LengthB, Heads, KvHeads, HeadDim, scale);
        Reference.AssertClose($"packed dQ A {kind}", ToDouble(a.DQ), Rows(packed.DQ, 0, LengthA, Heads), Tolerance);
        Reference.AssertClose($"packed dQ B {kind}", ToDouble(b.DQ), Rows(packed.DQ, LengthA, LengthB, Heads), Tolerance);
        Reference.AssertClose($"packed dK A {kind}", ToDouble(a.DK), Rows(packed.DK, 0, LengthA, KvHeads), Tolerance);
        Reference.AssertClose($"packed dK B {kind}", ToDouble(b.DK), Rows(packed.DK, LengthA, LengthB, KvHeads), Tolerance);
        Reference.AssertClose($"packed dV A {kind}", ToDouble(a.DV), Rows(packed.DV, 0, LengthA, KvHeads), Tolerance);
        Reference.AssertClose($"packed dV B {kind}", ToDouble(b.DV), Rows(packed.DV, LengthA, LengthB, KvHeads), Tolerance);
        // The padding key is visible to no query.
        Assert.All(Rows(packed.DK, Seq - 1, 1, KvHeads).Concat(Rows(packed.DV, Seq - 1, 1, KvHeads)), x => Assert.Equal(0f, x));
    }

    /// <summary>Positions [start, start + count) of a [1, seq, heads, HeadDim] tensor.</summary>
    private static float[] Rows(float[] x, int start, int count, int heads) => x.AsSpan(start * heads * HeadDim, count * heads * HeadDim).ToArray();

    private static int[] Ones(int length) => Enumerable.Repeat(1, length).ToArray();

    private static double[] ToDouble(float[] x) => x.Select(f => (double)f).ToArray();
}
