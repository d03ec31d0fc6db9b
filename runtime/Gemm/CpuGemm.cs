using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>
/// c[m, n] = Σ_k a[m, k] · w[n, k] on the CPU, with w in PyTorch Linear layout (one output per row).
/// Work is split into tiles of <see cref="RowBlock"/> rows × a column block sized so the block's w rows
/// (≤ <see cref="WBlockBytes"/>) stay in L2 while successive row blocks reuse them, computed in 4×2
/// register blocks: each w vector is loaded once and used for four a rows.
/// Tiles are numbered column-block-major so neighbouring workers share w rows; m = 1 (decoding) still
/// spreads over all cores through the column blocks.
/// </summary>
public static class CpuGemm
{
    private const int RowBlock = 4;
    private const int MaxColumnBlock = 64;
    private const int WBlockBytes = 256 * 1024;

    public static void Run<TEpilogue>(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, ICpuGemmEpilogue
    {
        GemmChecks.Check(a, w, c, m, n, k);
        if (w.IsBf16)
        {
            RunBf16(a, w, c, m, n, k, epilogue);
            return;
        }
        float[] aArray = a.HostArray, wArray = w.HostArray, cArray = c.HostArray;
        int aOffset = a.Offset, wOffset = w.Offset, cOffset = c.Offset;
        int rowBlocks = (m + RowBlock - 1) / RowBlock;
        // Even, between 8 and 64 columns: 64 for k ≤ 1024, 8 for k ≥ 8192.
        int columnBlock = Math.Clamp(WBlockBytes / (sizeof(float) * Math.Max(k, 1)), 8, MaxColumnBlock) & ~1;
        int columnBlocks = (n + columnBlock - 1) / columnBlock;
        int tiles = rowBlocks * columnBlocks;

        void Tile(int t)
        {
            int rowStart = t % rowBlocks * RowBlock, columnStart = t / rowBlocks * columnBlock;
            MultiplyTile(aArray.AsSpan(aOffset, m * k), wArray.AsSpan(wOffset, n * k), cArray.AsSpan(cOffset, m * n),
                rowStart, Math.Min(RowBlock, m - rowStart), columnStart, Math.Min(columnBlock, n - columnStart), n, k);
        }

        // Below ~1 MFLOP the thread-pool hand-off costs more than the arithmetic.
        if ((long)m * n * k < 1 << 18 || tiles == 1)
            for (int t = 0; t < tiles; t++) Tile(t);
        else
            Parallel.For(0, tiles, Tile);

        if (typeof(TEpilogue) == typeof(NoEpilogue)) return;
        if ((long)m * n < 1 << 14)
            for (int row = 0; row < m; row++) epilogue.ApplyRow(row, cArray.AsSpan(cOffset + row * n, n));
        else
            Parallel.For(0, m, row => epilogue.ApplyRow(row, cArray.AsSpan(cOffset + row * n, n)));
    }

    /// <summary>bf16 weights (kept in 16 bits on the cpu device): <see cref="CpuBf16Gemm"/>, then the same epilogue.</summary>
    private static void RunBf16<TEpilogue>(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, ICpuGemmEpilogue
    {
        float[] cArray = c.HostArray;
        int cOffset = c.Offset;
        CpuBf16Gemm.Run(a.HostArray.AsMemory(a.Offset, m * k), w.Bf16Memory.Slice(0, n * k), cArray.AsMemory(cOffset, m * n), m, n, k);
        if (typeof(TEpilogue) == typeof(NoEpilogue)) return;
        if ((long)m * n < 1 << 14)
            for (int row = 0; row < m; row++) epilogue.ApplyRow(row, cArray.AsSpan(cOffset + row * n, n));
        else
            Parallel.For(0, m, row => epilogue.ApplyRow(row, cArray.AsSpan(cOffset + row * n, n)));
    }

    private static void MultiplyTile(ReadOnlySpan<float> a, ReadOnlySpan<float> w, Span<float> c,
        int rowStart, int rows, int columnStart, int columns, int n, int k)
    {
        if (rows == RowBlock)
        {
            ReadOnlySpan<float> a0 = a.Slice(rowStart * k, k), a1 = a.Slice((rowStart + 1) * k, k),
                a2 = a.Slice((rowStart + 2) * k, k), a3 = a.Slice((rowStart + 3) * k, k);
            int end = columnStart + columns, j = columnStart;
            for (; j + 1 < end; j += 2)
            {
                Dot4x2(a0, a1, a2, a3, w.Slice(j * k, k), w.Slice((j + 1) * k, k), out Block4x2 s);
                c[rowStart * n + j] = s.R0C0; c[rowStart * n + j + 1] = s.R0C1;
                c[(rowStart + 1) * n + j] = s.R1C0; c[(rowStart + 1) * n + j + 1] = s.R1C1;
                c[(rowStart + 2) * n + j] = s.R2C0; c[(rowStart + 2) * n + j + 1] = s.R2C1;
                c[(rowStart + 3) * n + j] = s.R3C0; c[(rowStart + 3) * n + j + 1] = s.R3C1;
            }
            if (j < end)
            {
                ReadOnlySpan<float> wRow = w.Slice(j * k, k);
                c[rowStart * n + j] = TensorPrimitives.Dot(a0, wRow);
                c[(rowStart + 1) * n + j] = TensorPrimitives.Dot(a1, wRow);
                c[(rowStart + 2) * n + j] = TensorPrimitives.Dot(a2, wRow);
                c[(rowStart + 3) * n + j] = TensorPrimitives.Dot(a3, wRow);
            }
            return;
        }
        for (int r = rowStart; r < rowStart + rows; r++)
        {
            ReadOnlySpan<float> ar = a.Slice(r * k, k);
            for (int j = columnStart; j < columnStart + columns; j++)
                c[r * n + j] = TensorPrimitives.Dot(ar, w.Slice(j * k, k));
        }
    }

    private struct Block4x2
    {
        public float R0C0, R0C1, R1C0, R1C1, R2C0, R2C1, R3C0, R3C1;
    }

    /// <summary>
    /// The 4×2 block of dot products of four a rows with two w rows. Per vector step: 6 loads feed 8
    /// fused multiply-adds, and the 8 accumulators plus 3 operands fit in 16 vector registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4x2(ReadOnlySpan<float> a0, ReadOnlySpan<float> a1, ReadOnlySpan<float> a2, ReadOnlySpan<float> a3,
        ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, out Block4x2 s)
    {
        int k = w0.Length, width = Vector<float>.Count, i = 0;
        ref float r0 = ref MemoryMarshal.GetReference(a0), r1 = ref MemoryMarshal.GetReference(a1),
            r2 = ref MemoryMarshal.GetReference(a2), r3 = ref MemoryMarshal.GetReference(a3),
            q0 = ref MemoryMarshal.GetReference(w0), q1 = ref MemoryMarshal.GetReference(w1);
        Vector<float> v00 = default, v01 = default, v10 = default, v11 = default,
            v20 = default, v21 = default, v30 = default, v31 = default;
        for (; i <= k - width; i += width)
        {
            Vector<float> x0 = Vector.LoadUnsafe(ref q0, (nuint)i), x1 = Vector.LoadUnsafe(ref q1, (nuint)i);
            Vector<float> y = Vector.LoadUnsafe(ref r0, (nuint)i);
            v00 = Vector.FusedMultiplyAdd(y, x0, v00); v01 = Vector.FusedMultiplyAdd(y, x1, v01);
            y = Vector.LoadUnsafe(ref r1, (nuint)i);
            v10 = Vector.FusedMultiplyAdd(y, x0, v10); v11 = Vector.FusedMultiplyAdd(y, x1, v11);
            y = Vector.LoadUnsafe(ref r2, (nuint)i);
            v20 = Vector.FusedMultiplyAdd(y, x0, v20); v21 = Vector.FusedMultiplyAdd(y, x1, v21);
            y = Vector.LoadUnsafe(ref r3, (nuint)i);
            v30 = Vector.FusedMultiplyAdd(y, x0, v30); v31 = Vector.FusedMultiplyAdd(y, x1, v31);
        }
        s.R0C0 = Vector.Sum(v00); s.R0C1 = Vector.Sum(v01); s.R1C0 = Vector.Sum(v10); s.R1C1 = Vector.Sum(v11);
        s.R2C0 = Vector.Sum(v20); s.R2C1 = Vector.Sum(v21); s.R3C0 = Vector.Sum(v30); s.R3C1 = Vector.Sum(v31);
        for (; i < k; i++)
        {
            float x0 = w0[i], x1 = w1[i];
            s.R0C0 += a0[i] * x0; s.R0C1 += a0[i] * x1; s.R1C0 += a1[i] * x0; s.R1C1 += a1[i] * x1;
            s.R2C0 += a2[i] * x0; s.R2C1 += a2[i] * x1; s.R3C0 += a3[i] * x0; s.R3C1 += a3[i] * x1;
        }
    }
}

internal static class GemmChecks
{
    public static void Check(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k)
    {
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"GEMM sizes must be non-negative: m={m}, n={n}, k={k}");
        if (a.IsInt || w.IsInt || c.IsInt)
            throw new ArgumentException("GEMM operands must be float32 tensors");
        if ((long)m * k > a.Length || (long)n * k > w.Length || (long)m * n > c.Length)
            throw new ArgumentException(
                $"GEMM m={m} n={n} k={k} needs a ≥ {(long)m * k}, w ≥ {(long)n * k}, c ≥ {(long)m * n} elements; got {a}, {w}, {c}");
    }
}
