using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// The bf16-weight CPU GEMM/GEMV against a float64 reference computed from the same widened weights, on every vector
/// path (Vector512 runs emulated where the CPU lacks AVX-512, so its code is checked here too), at sizes that hit the
/// 4×2 and 1×4 blocks, odd leftover columns and rows, and k with and without a scalar tail.
/// </summary>
public class Bf16GemmTests
{
    public static TheoryData<Bf16Simd, int, int, int> Cases()
    {
        var data = new TheoryData<Bf16Simd, int, int, int>();
        int[][] sizes = [[1, 1, 1], [1, 37, 70], [1, 300, 64], [3, 9, 33], [4, 9, 5], [7, 13, 19], [8, 6, 96], [64, 96, 80], [130, 70, 200], [2, 130, 1031]];
        foreach (Bf16Simd simd in new[] { Bf16Simd.Scalar, Bf16Simd.Vector256, Bf16Simd.Vector512 })
            foreach (int[] s in sizes) data.Add(simd, s[0], s[1], s[2]);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesDoubleReferenceOnEveryVectorPath(Bf16Simd simd, int m, int n, int k)
    {
        float[] a = Reference.Random(m * k, 11);
        ushort[] w = ToBf16(Reference.Random(n * k, 12));
        float[] c = new float[m * n];
        CpuBf16Gemm.Run(a, w, c, m, n, k, simd);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double exact = 0, magnitude = 0;
                for (int p = 0; p < k; p++)
                {
                    double term = (double)a[i * k + p] * Bf16Kernels.Widen(w[j * k + p]);
                    exact += term;
                    magnitude += Math.Abs(term);
                }
                // f32 summation of k products: error at most about k·2⁻²⁴·Σ|terms| (Higham's recursive-summation bound).
                double bound = (k + 1) * Math.Pow(2, -24) * magnitude;
                Assert.True(Math.Abs(c[i * n + j] - exact) <= bound,
                    $"{simd} m={m} n={n} k={k}: c[{i},{j}] = {c[i * n + j]}, exact {exact}, bound {bound}");
            }
    }

    [Fact]
    public void WideningIsExactAndKeepsInfinitiesAndNaN()
    {
        Assert.Equal(1.0f, Bf16Kernels.Widen(0x3F80));
        Assert.Equal(-2.0f, Bf16Kernels.Widen(0xC000));
        Assert.Equal(float.PositiveInfinity, Bf16Kernels.Widen(0x7F80));
        Assert.True(float.IsNaN(Bf16Kernels.Widen(0x7FC0)));
        // An infinite weight makes the output infinite on every path, through the vector lanes and the tail alike.
        foreach (Bf16Simd simd in new[] { Bf16Simd.Scalar, Bf16Simd.Vector256, Bf16Simd.Vector512 })
            foreach (int position in new[] { 0, 5, 40 })
            {
                float[] a = Enumerable.Repeat(1f, 41).ToArray();
                ushort[] w = ToBf16(Enumerable.Repeat(0.5f, 41).ToArray());
                w[position] = 0x7F80;
                float[] c = new float[1];
                CpuBf16Gemm.Run(a, w, c, 1, 1, 41, simd);
                Assert.Equal(float.PositiveInfinity, c[0]);
            }
    }

    [Fact]
    public void DecodeShapeSpreadsOverThreadsAndEqualsTheSingleThreadedResult()
    {
        // 1 × 1536 · (2048 × 1536)ᵀ is above the threading threshold; every column must equal its own dot product.
        const int n = 2048, k = 1536;
        float[] a = Reference.Random(k, 21);
        ushort[] w = ToBf16(Reference.Random(n * k, 22));
        float[] c = new float[n], single = new float[1];
        CpuBf16Gemm.Run(a, w, c, 1, n, k);
        for (int j = 0; j < n; j += 97)
        {
            CpuBf16Gemm.Run(a, w.AsMemory(j * k, k), single, 1, 1, k);
            Assert.Equal(single[0], c[j]);
        }
    }

    [Fact]
    public void RejectsOperandsTooSmallForTheSizes()
    {
        var e = Assert.Throws<ArgumentException>(() => CpuBf16Gemm.Run(new float[6], new ushort[5], new float[2], 2, 2, 3));
        Assert.Contains("w ≥ 6", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuBf16Gemm.Run(new float[1], new ushort[1], new float[1], 1, 1, 1, (Bf16Simd)128));
    }

    /// <summary>The bf16 bit patterns nearest to the values (ties to even), as the checkpoint would hold them.</summary>
    private static ushort[] ToBf16(float[] values) =>
        values.Select(v => (ushort)(BitConverter.SingleToInt32Bits(Bf16.Round(v)) >>> 16)).ToArray();
}
