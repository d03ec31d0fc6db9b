using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Kernels;

using Reference = Qwen2VL.Tests.Runtime.Reference;

public class GemmBackwardTests
{
    private const double Tolerance = 1e-5;

    // Sizes straddle the 16×16 ILGPU tile and the 8-row CPU block; operands are views at an offset.
    [Theory]
    [InlineData(DeviceKind.Cpu, false)]
    [InlineData(DeviceKind.Cpu, true)]
    [InlineData(DeviceKind.IlgpuCpu, false)]
    [InlineData(DeviceKind.IlgpuCpu, true)]
    public void GemmNNMatchesFloat64(DeviceKind kind, bool accumulate)
    {
        const int m = 19, n = 23, k = 17;
        float[] a = Reference.Random(m * k, 1), b = Reference.Random(k * n, 2), c0 = Reference.Random(m * n, 3);
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? c0[i * n + j] : 0;
                for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * n + j];
                expected[i * n + j] = s;
            }
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor ta = WithOffset(ctx, a), tb = WithOffset(ctx, b), tc = WithOffset(ctx, c0);
        ctx.GemmNN(View(ta, a.Length), View(tb, b.Length), View(tc, c0.Length), m, n, k, accumulate);
        Reference.AssertClose($"GemmNN {kind} accumulate={accumulate}", expected, ctx.Download(View(tc, c0.Length)), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu, false)]
    [InlineData(DeviceKind.Cpu, true)]
    [InlineData(DeviceKind.IlgpuCpu, false)]
    [InlineData(DeviceKind.IlgpuCpu, true)]
    public void GemmTNMatchesFloat64(DeviceKind kind, bool accumulate)
    {
        const int m = 21, n = 18, k = 35;
        float[] a = Reference.Random(k * m, 4), b = Reference.Random(k * n, 5), c0 = Reference.Random(m * n, 6);
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? c0[i * n + j] : 0;
                for (int p = 0; p < k; p++) s += (double)a[p * m + i] * b[p * n + j];
                expected[i * n + j] = s;
            }
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor ta = WithOffset(ctx, a), tb = WithOffset(ctx, b), tc = WithOffset(ctx, c0);
        ctx.GemmTN(View(ta, a.Length), View(tb, b.Length), View(tc, c0.Length), m, n, k, accumulate);
        Reference.AssertClose($"GemmTN {kind} accumulate={accumulate}", expected, ctx.Download(View(tc, c0.Length)), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu, false)]
    [InlineData(DeviceKind.Cpu, true)]
    [InlineData(DeviceKind.IlgpuCpu, false)]
    [InlineData(DeviceKind.IlgpuCpu, true)]
    public void ColumnSumMatchesFloat64(DeviceKind kind, bool accumulate)
    {
        const int rows = 13, cols = 37;
        float[] a = Reference.Random(rows * cols, 7), c0 = Reference.Random(cols, 8);
        var expected = new double[cols];
        for (int j = 0; j < cols; j++)
        {
            double s = accumulate ? c0[j] : 0;
            for (int r = 0; r < rows; r++) s += a[r * cols + j];
            expected[j] = s;
        }
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor ta = WithOffset(ctx, a), tc = WithOffset(ctx, c0);
        ctx.ColumnSum(View(ta, a.Length), View(tc, cols), rows, cols, accumulate);
        Reference.AssertClose($"ColumnSum {kind} accumulate={accumulate}", expected, ctx.Download(View(tc, cols)), Tolerance);
    }

    [Fact]
    public void TooSmallOperandsAreRejected()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor a = ctx.Allocate(4, 3), b = ctx.Allocate(3, 5), c = ctx.Allocate(4, 4);
        var e = Assert.Throws<ArgumentException>(() => ctx.GemmNN(a, b, c, 4, 5, 3, false));
        Assert.Contains("GemmNN", e.Message);
    }

    /// <summary>The data three elements into a larger buffer, so kernels must honour view offsets.</summary>
    private static DeviceTensor WithOffset(ComputeContext ctx, float[] data)
    {
        var padded = new float[data.Length + 5];
        for (int i = 0; i < padded.Length; i++) padded[i] = float.NaN;
        data.CopyTo(padded, 3);
        return ctx.Upload(padded, padded.Length);
    }

    private static DeviceTensor View(DeviceTensor t, int length) => t.Slice(3, length, length);
}
