using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    /// <summary>
    /// c[m, n] (+)= Σ_p a[m, p] · b[p, n] (both operands row-major, no transpose). In a Linear backward with
    /// weight w[out, in] this is dx[T, in] = dy[T, out] · w (m = T, n = in, k = out).
    /// With <paramref name="accumulate"/> the product is added to c, otherwise c is overwritten. b may be a bf16 weight
    /// (<c>--dtype bf16</c>, <c>train --bf16</c>): each element is widened exactly to f32 as it is read, the product and
    /// its accumulation stay f32.
    /// </summary>
    public void GemmNN(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate)
    {
        GemmBackwardChecks.Check("GemmNN", a, b, c, m, n, k, bf16B: true);
        if (b.IsBf16)
        {
            if (IsCpu) { CpuGemmBackward.NNBf16(a, b, c, m, n, k, accumulate); return; }
            LaunchStridedBf16(a, b, c, m, n, k, accumulate);
            return;
        }
        if (IsCpu) { CpuGemmBackward.NN(a, b, c, m, n, k, accumulate); return; }
        // A(i, p) = a[i·k + p], B(p, j) = b[p·n + j].
        LaunchStrided(a, b, c, m, n, k, new GemmStrides { ARow = k, ADepth = 1, BDepth = n, BCol = 1 }, accumulate);
    }

    /// <summary>
    /// c[m, n] (+)= Σ_p a[p, m] · b[p, n], i.e. aᵀ·b with a[k, m] and b[k, n]. In a Linear backward this is
    /// dW[out, in] += dyᵀ · x with dy[T, out], x[T, in] (m = out, n = in, k = T).
    /// </summary>
    public void GemmTN(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate)
    {
        GemmBackwardChecks.Check("GemmTN", a, b, c, m, n, k);
        if (IsCpu) { CpuGemmBackward.TN(a, b, c, m, n, k, accumulate); return; }
        // A(i, p) = a[p·m + i], B(p, j) = b[p·n + j].
        LaunchStrided(a, b, c, m, n, k, new GemmStrides { ARow = 1, ADepth = m, BDepth = n, BCol = 1 }, accumulate);
    }

    /// <summary>c[cols] (+)= Σ_r a[r, cols]: the bias gradient of a Linear layer from dy[T, out].</summary>
    public void ColumnSum(DeviceTensor a, DeviceTensor c, int rows, int cols, bool accumulate)
    {
        if (rows < 0 || cols < 0) throw new ArgumentException($"ColumnSum sizes must be non-negative: rows={rows}, cols={cols}");
        if (a.IsInt || c.IsInt || (long)rows * cols > a.Length || cols > c.Length)
            throw new ArgumentException($"ColumnSum rows={rows} cols={cols} needs float32 a ≥ {(long)rows * cols} and c ≥ {cols} elements; got {a}, {c}");
        if (IsCpu) { CpuGemmBackward.ColumnSum(a, c, rows, cols, accumulate); return; }
        if (cols == 0) return;
        var kernel = CachedKernel("column-sum", typeof(ColumnSumArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ColumnSumArgs>(GemmBackwardKernels.ColumnSum));
        kernel(cols, a.View, c.View, new ColumnSumArgs { Rows = rows, Cols = cols, Accumulate = accumulate ? 1 : 0 });
    }

    private void LaunchStrided(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, GemmStrides strides, bool accumulate)
    {
        if (m == 0 || n == 0) return;
        strides.M = m; strides.N = n; strides.K = k; strides.Accumulate = accumulate ? 1 : 0;
        var kernel = CachedKernel("gemm-strided", typeof(GemmStrides), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmStrides>(GemmBackwardKernels.Strided));
        const int tile = GemmBackwardKernels.Tile;
        var grid = new Index2D((n + tile - 1) / tile, (m + tile - 1) / tile);
        kernel(new KernelConfig(grid, new Index2D(tile, tile)), a.View, b.View, c.View, strides);
    }

    /// <summary>GemmNN with a bf16 b on an ILGPU device: the tiled kernel of the f32 form, b staged through a 16-bit load.</summary>
    private void LaunchStridedBf16(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate)
    {
        if (m == 0 || n == 0) return;
        var strides = new GemmStrides { ARow = k, ADepth = 1, BDepth = n, BCol = 1, M = m, N = n, K = k, Accumulate = accumulate ? 1 : 0 };
        var kernel = CachedKernel("gemm-strided-bf16", typeof(GemmStrides), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<float>, GemmStrides>(GemmBackwardKernels.StridedBf16));
        const int tile = GemmBackwardKernels.Tile;
        var grid = new Index2D((n + tile - 1) / tile, (m + tile - 1) / tile);
        kernel(new KernelConfig(grid, new Index2D(tile, tile)), a.View, b.Bf16View, c.View, strides);
    }
}

internal static class GemmBackwardChecks
{
    public static void Check(string name, DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool bf16B = false)
    {
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"{name} sizes must be non-negative: m={m}, n={n}, k={k}");
        if (a.IsInt || b.IsInt || c.IsInt || a.IsBf16 || c.IsBf16 || (b.IsBf16 && !bf16B))
            throw new ArgumentException($"{name} operands must be float32 tensors{(bf16B ? " (b may be a bf16 weight)" : "")}; got {a}, {b}, {c}");
        if ((long)m * k > a.Length || (long)k * n > b.Length || (long)m * n > c.Length)
            throw new ArgumentException(
                $"{name} m={m} n={n} k={k} needs a ≥ {(long)m * k}, b ≥ {(long)k * n}, c ≥ {(long)m * n} elements; got {a}, {b}, {c}");
    }
}
