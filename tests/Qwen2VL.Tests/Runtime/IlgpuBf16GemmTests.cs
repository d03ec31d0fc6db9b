using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// The ILGPU GEMMs with bf16 weights (16-bit buffers, widened by a shift in the kernel), run on ILGPU's CPU
/// accelerator: the skinny (m ≤ 4) and blocked (m ≥ 5) forms, with the generated-style epilogue, against a float64
/// reference from the same widened weights.
/// </summary>
public class IlgpuBf16GemmTests
{
    [Theory]
    [InlineData(1, 37, 70)]
    [InlineData(4, 9, 5)]
    [InlineData(3, 33, 40)]
    [InlineData(7, 13, 19)]
    [InlineData(70, 130, 33)]
    public void Bf16WeightGemmMatchesDoubleReference(int m, int n, int k)
    {
        float[] a = Reference.Random(m * k, 41), bias = Reference.Random(n, 42), residual = Reference.Random(m * n, 43);
        ushort[] w = Reference.Random(n * k, 44).Select(v => (ushort)(BitConverter.SingleToInt32Bits(Bf16.Round(v)) >>> 16)).ToArray();
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using DeviceTensor ta = ctx.Upload(a, m, k), tw = ctx.UploadBf16(w, n, k), tc = ctx.Allocate(m, n);
        using DeviceTensor tb = ctx.Upload(bias, n), tr = ctx.Upload(residual, m, n);
        Assert.True(tw.IsBf16);
        ctx.Gemm(ta, tw, tc, m, n, k, new BiasResidualEpilogue { Bias = tb.View, Residual = tr.View, N = n });
        float[] c = ctx.Download(tc);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double exact = bias[j] + residual[i * n + j], magnitude = Math.Abs(exact);
                for (int p = 0; p < k; p++)
                {
                    double term = (double)a[i * k + p] * BitConverter.Int32BitsToSingle(w[j * k + p] << 16);
                    exact += term;
                    magnitude += Math.Abs(term);
                }
                double bound = (k + 3) * Math.Pow(2, -24) * magnitude;
                Assert.True(Math.Abs(c[i * n + j] - exact) <= bound, $"m={m} n={n} k={k}: c[{i},{j}] = {c[i * n + j]}, exact {exact}, bound {bound}");
            }
    }
}
