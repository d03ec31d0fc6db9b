using ILGPU;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>GPU epilogue as the generator emits it: ArrayView fields read at the store.</summary>
public struct BiasResidualEpilogue : IGemmEpilogue
{
    public ArrayView<float> Bias;
    public ArrayView<float> Residual;
    public int N;

    public readonly float Apply(int row, int col, float acc) => acc + Bias[col] + Residual[row * N + col];
}

/// <summary>The CPU counterpart, applied to whole rows.</summary>
public struct CpuBiasResidualEpilogue : ICpuGemmEpilogue
{
    public float[] Bias;
    public float[] Residual;

    public readonly void ApplyRow(int row, Span<float> c)
    {
        for (int j = 0; j < c.Length; j++) c[j] += Bias[j] + Residual[row * c.Length + j];
    }
}

public class GemmTests
{
    private const double Tolerance = 1e-5;

    private static double[] Naive(float[] a, float[] w, int m, int n, int k, float[]? bias = null, float[]? residual = null)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += (double)a[i * k + p] * w[j * k + p];
                c[i * n + j] = sum + (bias?[j] ?? 0) + (residual?[i * n + j] ?? 0);
            }
        return c;
    }

    [Theory]
    [InlineData(DeviceKind.Cpu, 7, 13, 19)]
    [InlineData(DeviceKind.Cpu, 64, 96, 80)]
    [InlineData(DeviceKind.Cpu, 1, 300, 37)]
    [InlineData(DeviceKind.Cpu, 130, 70, 200)]
    [InlineData(DeviceKind.IlgpuCpu, 7, 13, 19)]
    [InlineData(DeviceKind.IlgpuCpu, 17, 33, 40)]
    [InlineData(DeviceKind.IlgpuCpu, 70, 130, 33)]
    [InlineData(DeviceKind.IlgpuCpu, 1, 37, 70)]
    [InlineData(DeviceKind.IlgpuCpu, 4, 9, 5)]
    public void PlainGemmMatchesDoubleReference(DeviceKind kind, int m, int n, int k)
    {
        float[] a = Reference.Random(m * k, 1), w = Reference.Random(n * k, 2);
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor ta = ctx.Upload(a, m, k), tw = ctx.Upload(w, n, k), tc = ctx.Allocate(m, n);
        ctx.Gemm(ta, tw, tc, m, n, k);
        Reference.AssertClose($"gemm {kind} {m}x{n}x{k}", Naive(a, w, m, n, k), ctx.Download(tc), Tolerance);
    }

    /// <summary>
    /// k = 9000 selects the narrowest column blocks. Float rounding grows with k, so each element is held
    /// to 1e-6 of Σ_p |a·w| (the scale of its rounding error), not of its value, which may cancel to ~0.
    /// </summary>
    [Fact]
    public void LongReductionOnCpuStaysWithinItsRoundingScale()
    {
        const int m = 9, n = 21, k = 9000;
        float[] a = Reference.Random(m * k, 13), w = Reference.Random(n * k, 14);
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor ta = ctx.Upload(a, m, k), tw = ctx.Upload(w, n, k), tc = ctx.Allocate(m, n);
        ctx.Gemm(ta, tw, tc, m, n, k);
        double[] expected = Naive(a, w, m, n, k);
        float[] actual = ctx.Download(tc);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double magnitude = 0;
                for (int p = 0; p < k; p++) magnitude += Math.Abs((double)a[i * k + p] * w[j * k + p]);
                double error = Math.Abs(actual[i * n + j] - expected[i * n + j]);
                Assert.True(error <= 1e-6 * magnitude, $"c[{i}, {j}]: |{actual[i * n + j]} - {expected[i * n + j]}| = {error:E2} > 1e-6 · {magnitude:F1}");
            }
    }

    [Fact]
    public void LargerGemmOnCpuMatches64x96x80() => PlainGemmMatchesDoubleReference(DeviceKind.Cpu, 64, 96, 80);

    [Theory]
    [InlineData(7, 13, 19)]
    [InlineData(64, 96, 80)]
    public void CpuEpilogueAddsBiasAndResidual(int m, int n, int k)
    {
        float[] a = Reference.Random(m * k, 3), w = Reference.Random(n * k, 4);
        float[] bias = Reference.Random(n, 5), residual = Reference.Random(m * n, 6);
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor ta = ctx.Upload(a, m, k), tw = ctx.Upload(w, n, k), tc = ctx.Allocate(m, n);
        CpuGemm.Run(ta, tw, tc, m, n, k, new CpuBiasResidualEpilogue { Bias = bias, Residual = residual });
        Reference.AssertClose("cpu gemm + bias + residual", Naive(a, w, m, n, k, bias, residual), ctx.Download(tc), Tolerance);
    }

    [Theory]
    [InlineData(7, 13, 19)]  // register-blocked kernel
    [InlineData(3, 13, 19)]  // warp-per-column kernel (m ≤ 4)
    public void IlgpuEpilogueStructWithArrayViewFieldsAddsBiasAndResidual(int m, int n, int k)
    {
        float[] a = Reference.Random(m * k, 7), w = Reference.Random(n * k, 8);
        float[] bias = Reference.Random(n, 9), residual = Reference.Random(m * n, 10);
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using DeviceTensor ta = ctx.Upload(a, m, k), tw = ctx.Upload(w, n, k), tc = ctx.Allocate(m, n);
        using DeviceTensor tb = ctx.Upload(bias, n), tr = ctx.Upload(residual, m, n);
        ctx.Gemm(ta, tw, tc, m, n, k, new BiasResidualEpilogue { Bias = tb.View, Residual = tr.View, N = n });
        Reference.AssertClose("ilgpu gemm + bias + residual", Naive(a, w, m, n, k, bias, residual), ctx.Download(tc), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void GemmOnSlicedViewsUsesTheirOffsets(DeviceKind kind)
    {
        const int m = 5, n = 6, k = 9;
        float[] a = Reference.Random(m * k, 11), w = Reference.Random(n * k, 12);
        using ComputeContext ctx = ComputeContext.Create(kind);
        // One arena holding a, w and c at odd offsets, as the memory planner carves it.
        using DeviceTensor arena = ctx.Allocate(3 + m * k + 5 + n * k + 1 + m * n);
        DeviceTensor va = arena.Slice(3, m * k, m, k);
        DeviceTensor vw = arena.Slice(3 + m * k + 5, n * k, n, k);
        DeviceTensor vc = arena.Slice(3 + m * k + 5 + n * k + 1, m * n, m, n);
        ctx.CopyFrom(a, va);
        ctx.CopyFrom(w, vw);
        ctx.Gemm(va, vw, vc, m, n, k);
        Reference.AssertClose("gemm on views", Naive(a, w, m, n, k), ctx.Download(vc), Tolerance);
        Assert.Equal(a, ctx.Download(va)); // inputs untouched
    }
}
