using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Kernels;

using Reference = Qwen2VL.Tests.Runtime.Reference;

public class AttentionBackwardTests
{
    private const double Tolerance = 1e-5;

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void SegmentsBackwardMatchesFloat64AndFiniteDifferences(DeviceKind kind)
    {
        const int n = 11, heads = 2, headDim = 5;
        int[] cu = [0, 4, 4, 9, 11]; // includes an empty segment
        float scale = 1f / MathF.Sqrt(headDim);
        float[] q = Reference.Random(n * heads * headDim, 41, 2f), k = Reference.Random(n * heads * headDim, 42, 2f),
            v = Reference.Random(n * heads * headDim, 43), dOut = Reference.Random(n * heads * headDim, 44);
        var expected = AttentionReference.Run(q, k, v, dOut, AttentionReference.SegmentRows(cu, heads, headDim), headDim, scale);

        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor tcu = ctx.UploadInt(cu, cu.Length);
        float[] Forward()
        {
            using DeviceTensor tq = ctx.Upload(q, n, heads, headDim), tk = ctx.Upload(k, n, heads, headDim),
                tv = ctx.Upload(v, n, heads, headDim), to = ctx.Allocate(n, heads, headDim);
            ctx.AttentionSegments(tq, tk, tv, to, tcu, n, heads, headDim, scale);
            return ctx.Download(to);
        }
        Reference.AssertClose($"segments forward {kind}", expected.O, Forward(), Tolerance);

        using DeviceTensor tq = ctx.Upload(q, n, heads, headDim), tk = ctx.Upload(k, n, heads, headDim),
            tv = ctx.Upload(v, n, heads, headDim), tdo = ctx.Upload(dOut, n, heads, headDim);
        using DeviceTensor dq = Garbage(ctx, q.Length), dk = Garbage(ctx, k.Length), dv = Garbage(ctx, v.Length);
        ctx.AttentionSegmentsBackward(tq, tk, tv, tdo, dq, dk, dv, tcu, n, heads, headDim, scale);
        float[] gq = ctx.Download(dq), gk = ctx.Download(dk), gv = ctx.Download(dv);
        Reference.AssertClose($"segments dQ {kind}", expected.DQ, gq, Tolerance);
        Reference.AssertClose($"segments dK {kind}", expected.DK, gk, Tolerance);
        Reference.AssertClose($"segments dV {kind}", expected.DV, gv, Tolerance);

        double Loss() => FiniteDifference.Dot(Forward(), dOut);
        int samples = kind == DeviceKind.Cpu ? 40 : 8;
        FiniteDifference.Check($"segments dQ {kind}", q, FiniteDifference.ToDouble(gq), Loss, samples, 1);
        FiniteDifference.Check($"segments dK {kind}", k, FiniteDifference.ToDouble(gk), Loss, samples, 2);
        FiniteDifference.Check($"segments dV {kind}", v, FiniteDifference.ToDouble(gv), Loss, samples, 3);
    }

    /// <summary>
    /// Batch 0 is left-padded (its first two queries see no key: uniform P over the row, gradients as autograd gives
    /// them through transformers' s + float32-min scores); batch 1 packs two samples (segment ids 1 and 2) and ends
    /// in a padding position.
    /// </summary>
    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void CausalBackwardMatchesFloat64WithPaddingAndPacking(DeviceKind kind)
    {
        const int batch = 2, seq = 6, heads = 4, kvHeads = 2, headDim = 8;
        int[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 0];
        var (q, k, v, dOut, scale) = CausalInputs(batch, seq, heads, kvHeads, headDim, 51);
        var expected = AttentionReference.Run(q, k, v, dOut, AttentionReference.CausalRows(mask, batch, seq, heads, kvHeads, headDim), headDim, scale);

        using ComputeContext ctx = ComputeContext.Create(kind);
        Reference.AssertClose($"causal forward {kind}", expected.O, CausalForward(ctx, q, k, v, mask, batch, seq, heads, kvHeads, headDim, scale), Tolerance);
        var (gq, gk, gv) = CausalBackward(ctx, q, k, v, dOut, mask, batch, seq, heads, kvHeads, headDim, scale);
        Reference.AssertClose($"causal dQ {kind}", expected.DQ, gq, Tolerance);
        Reference.AssertClose($"causal dK {kind}", expected.DK, gk, Tolerance);
        Reference.AssertClose($"causal dV {kind}", expected.DV, gv, Tolerance);
        // The fully masked rows do pass gradient to q (a plain masked softmax would give exactly zero there).
        Assert.Contains(gq.Take(2 * heads * headDim), x => Math.Abs(x) > 1e-3);
    }

    /// <summary>
    /// Finite differences need a mask without fully masked query rows: there the float32 forward is uniform whatever
    /// q and k are (float32-min swallows the score), so its numeric derivative is 0 while autograd's is not (tested above).
    /// </summary>
    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void CausalBackwardMatchesFiniteDifferences(DeviceKind kind)
    {
        const int batch = 2, seq = 5, heads = 4, kvHeads = 2, headDim = 4;
        int[] mask = [1, 1, 1, 0, 0, 1, 1, 2, 2, 2];
        var (q, k, v, dOut, scale) = CausalInputs(batch, seq, heads, kvHeads, headDim, 61);
        using ComputeContext ctx = ComputeContext.Create(kind);
        var (gq, gk, gv) = CausalBackward(ctx, q, k, v, dOut, mask, batch, seq, heads, kvHeads, headDim, scale);
        // The thread-per-query forward: the warp kernel is slow on the ilgpu-cpu simulator (both are checked against each other elsewhere).
        double Loss() => FiniteDifference.Dot(CausalForward(ctx, q, k, v, mask, batch, seq, heads, kvHeads, headDim, scale,
            ComputeContext.CausalKernel.ThreadPerQuery), dOut);
        int samples = kind == DeviceKind.Cpu ? 40 : 8;
        FiniteDifference.Check($"causal dQ {kind}", q, FiniteDifference.ToDouble(gq), Loss, samples, 4);
        FiniteDifference.Check($"causal dK {kind}", k, FiniteDifference.ToDouble(gk), Loss, samples, 5);
        FiniteDifference.Check($"causal dV {kind}", v, FiniteDifference.ToDouble(gv), Loss, samples, 6);
    }

    internal static (float[] Q, float[] K, float[] V, float[] DOut, float Scale) CausalInputs(int batch, int seq, int heads, int kvHeads, int headDim, int seed) =>
        (Reference.Random(batch * seq * heads * headDim, seed, 2f), Reference.Random(batch * seq * kvHeads * headDim, seed + 1, 2f),
            Reference.Random(batch * seq * kvHeads * headDim, seed + 2), Reference.Random(batch * seq * heads * headDim, seed + 3),
            1f / MathF.Sqrt(headDim));

    internal static float[] CausalForward(ComputeContext ctx, float[] q, float[] k, float[] v, int[] mask,
        int batch, int seq, int heads, int kvHeads, int headDim, float scale, ComputeContext.CausalKernel kernel = ComputeContext.CausalKernel.Auto)
    {
        using DeviceTensor tq = ctx.Upload(q, batch, seq, heads, headDim), tk = ctx.Upload(k, batch, seq, kvHeads, headDim),
            tv = ctx.Upload(v, batch, seq, kvHeads, headDim), to = ctx.Allocate(batch, seq, heads, headDim), tm = ctx.UploadInt(mask, batch, seq);
        ctx.AttentionCausalCached(tq, tk, tv, to, tm, batch, seq, seq, seq, heads, kvHeads, headDim, scale, kernel);
        return ctx.Download(to);
    }

    internal static (float[] DQ, float[] DK, float[] DV) CausalBackward(ComputeContext ctx, float[] q, float[] k, float[] v, float[] dOut,
        int[] mask, int batch, int seq, int heads, int kvHeads, int headDim, float scale)
    {
        using DeviceTensor tq = ctx.Upload(q, batch, seq, heads, headDim), tk = ctx.Upload(k, batch, seq, kvHeads, headDim),
            tv = ctx.Upload(v, batch, seq, kvHeads, headDim), tdo = ctx.Upload(dOut, batch, seq, heads, headDim), tm = ctx.UploadInt(mask, batch, seq);
        using DeviceTensor dq = Garbage(ctx, q.Length), dk = Garbage(ctx, k.Length), dv = Garbage(ctx, v.Length);
        ctx.AttentionCausalBackward(tq, tk, tv, tdo, dq, dk, dv, tm, batch, seq, heads, kvHeads, headDim, scale);
        return (ctx.Download(dq), ctx.Download(dk), ctx.Download(dv));
    }

    /// <summary>Outputs start as NaN so a kernel that accumulates instead of overwriting fails.</summary>
    internal static DeviceTensor Garbage(ComputeContext ctx, int length)
    {
        var data = new float[length];
        Array.Fill(data, float.NaN);
        return ctx.Upload(data, length);
    }
}
