using System.Numerics.Tensors;

namespace Qwen2VL.Runtime;

/// <summary>
/// The backward GEMMs on the CPU, written as rows of axpy updates (TensorPrimitives.MultiplyAdd) so the
/// innermost loop runs along contiguous rows of b and c:
/// NN: c[i, :] (+)= Σ_p a[i, p] · b[p, :];  TN: c[i, :] (+)= Σ_p a[p, i] · b[p, :].
/// One task per block of 8 c rows, walking p outermost so each b row is read from memory once per block and
/// reused for every c row in it (b is the large operand: a weight matrix, or the activations).
/// </summary>
internal static class CpuGemmBackward
{
    private const int RowBlock = 8;

    public static void NN(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate)
    {
        float[] aa = a.HostArray, ba = b.HostArray, ca = c.HostArray;
        int ao = a.Offset, bo = b.Offset, co = c.Offset;
        ForBlocks(m, (long)m * n * k, block =>
        {
            int end = Math.Min(m, block + RowBlock);
            if (!accumulate) ca.AsSpan(co + block * n, (end - block) * n).Clear();
            for (int p = 0; p < k; p++)
            {
                ReadOnlySpan<float> bp = ba.AsSpan(bo + p * n, n);
                for (int i = block; i < end; i++)
                {
                    Span<float> ci = ca.AsSpan(co + i * n, n);
                    TensorPrimitives.MultiplyAdd(bp, aa[ao + i * k + p], ci, ci);
                }
            }
        });
    }

    /// <summary>
    /// NN with b a bf16 weight [k, n]: each block widens row p of b once (exactly, a 16-bit shift) into a scratch row
    /// and applies it to its 8 c rows, so the weight is read in 16 bits and every product and sum is f32.
    /// </summary>
    public static void NNBf16(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate)
    {
        float[] aa = a.HostArray, ca = c.HostArray;
        ReadOnlyMemory<ushort> bm = b.Bf16Memory;
        int ao = a.Offset, co = c.Offset;
        ForBlocks(m, (long)m * n * k, block =>
        {
            int end = Math.Min(m, block + RowBlock);
            if (!accumulate) ca.AsSpan(co + block * n, (end - block) * n).Clear();
            float[] widened = System.Buffers.ArrayPool<float>.Shared.Rent(n);
            ReadOnlySpan<ushort> bs = bm.Span;
            for (int p = 0; p < k; p++)
            {
                Span<float> bp = widened.AsSpan(0, n);
                Bf16Kernels.WidenRow(bs.Slice(p * n, n), bp);
                for (int i = block; i < end; i++)
                {
                    Span<float> ci = ca.AsSpan(co + i * n, n);
                    TensorPrimitives.MultiplyAdd(bp, aa[ao + i * k + p], ci, ci);
                }
            }
            System.Buffers.ArrayPool<float>.Shared.Return(widened);
        });
    }

    public static void TN(DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate)
    {
        float[] aa = a.HostArray, ba = b.HostArray, ca = c.HostArray;
        int ao = a.Offset, bo = b.Offset, co = c.Offset;
        ForBlocks(m, (long)m * n * k, block =>
        {
            int end = Math.Min(m, block + RowBlock);
            if (!accumulate) ca.AsSpan(co + block * n, (end - block) * n).Clear();
            for (int p = 0; p < k; p++)
            {
                ReadOnlySpan<float> bp = ba.AsSpan(bo + p * n, n);
                for (int i = block; i < end; i++)
                {
                    Span<float> ci = ca.AsSpan(co + i * n, n);
                    TensorPrimitives.MultiplyAdd(bp, aa[ao + p * m + i], ci, ci);
                }
            }
        });
    }

    public static void ColumnSum(DeviceTensor a, DeviceTensor c, int rows, int cols, bool accumulate)
    {
        Span<float> sum = c.Span.Slice(0, cols);
        if (!accumulate) sum.Clear();
        ReadOnlySpan<float> all = a.Span;
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(sum, all.Slice(r * cols, cols), sum);
    }

    /// <summary>Runs <paramref name="body"/> for every block start 0, RowBlock, … below m; in parallel unless the work is tiny.</summary>
    private static void ForBlocks(int m, long flops, Action<int> body)
    {
        int blocks = (m + RowBlock - 1) / RowBlock;
        if (flops < 1 << 18 || blocks == 1)
            for (int t = 0; t < blocks; t++) body(t * RowBlock);
        else
            Parallel.For(0, blocks, t => body(t * RowBlock));
    }
}
