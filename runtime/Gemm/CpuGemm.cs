using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>
/// c[m, n] = Σ_k a[m, k] · w[n, k] on the CPU, with w in PyTorch Linear layout (one output per row).
/// Work is split into tiles of <see cref="RowBlock"/> rows × <see cref="ColumnBlock"/> columns: each w row
/// is loaded once per tile and used for four a rows, and the tile's w rows stay in cache across them.
/// Tiles are numbered column-block-major so neighbouring workers share w rows; m = 1 (decoding) still
/// spreads over all cores through the column blocks.
/// </summary>
public static class CpuGemm
{
    private const int RowBlock = 4;
    private const int ColumnBlock = 64;

    public static void Run<TEpilogue>(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, ICpuGemmEpilogue
    {
        GemmChecks.Check(a, w, c, m, n, k);
        float[] aArray = a.HostArray, wArray = w.HostArray, cArray = c.HostArray;
        int aOffset = a.Offset, wOffset = w.Offset, cOffset = c.Offset;
        int rowBlocks = (m + RowBlock - 1) / RowBlock;
        int columnBlocks = (n + ColumnBlock - 1) / ColumnBlock;
        int tiles = rowBlocks * columnBlocks;

        void Tile(int t)
        {
            int rowStart = t % rowBlocks * RowBlock, columnStart = t / rowBlocks * ColumnBlock;
            MultiplyTile(aArray.AsSpan(aOffset, m * k), wArray.AsSpan(wOffset, n * k), cArray.AsSpan(cOffset, m * n),
                rowStart, Math.Min(RowBlock, m - rowStart), columnStart, Math.Min(ColumnBlock, n - columnStart), n, k);
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

    private static void MultiplyTile(ReadOnlySpan<float> a, ReadOnlySpan<float> w, Span<float> c,
        int rowStart, int rows, int columnStart, int columns, int n, int k)
    {
        if (rows == RowBlock)
        {
            ReadOnlySpan<float> a0 = a.Slice(rowStart * k, k), a1 = a.Slice((rowStart + 1) * k, k),
                a2 = a.Slice((rowStart + 2) * k, k), a3 = a.Slice((rowStart + 3) * k, k);
            for (int j = columnStart; j < columnStart + columns; j++)
            {
                Dot4(a0, a1, a2, a3, w.Slice(j * k, k), out float s0, out float s1, out float s2, out float s3);
                c[rowStart * n + j] = s0;
                c[(rowStart + 1) * n + j] = s1;
                c[(rowStart + 2) * n + j] = s2;
                c[(rowStart + 3) * n + j] = s3;
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

    /// <summary>Four dot products against one w row: each w vector is loaded once and used four times.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4(ReadOnlySpan<float> a0, ReadOnlySpan<float> a1, ReadOnlySpan<float> a2, ReadOnlySpan<float> a3,
        ReadOnlySpan<float> wRow, out float s0, out float s1, out float s2, out float s3)
    {
        int k = wRow.Length, width = Vector<float>.Count, i = 0;
        ref float r0 = ref MemoryMarshal.GetReference(a0), r1 = ref MemoryMarshal.GetReference(a1),
            r2 = ref MemoryMarshal.GetReference(a2), r3 = ref MemoryMarshal.GetReference(a3),
            rw = ref MemoryMarshal.GetReference(wRow);
        Vector<float> v0 = default, v1 = default, v2 = default, v3 = default;
        for (; i <= k - width; i += width)
        {
            Vector<float> wv = Vector.LoadUnsafe(ref rw, (nuint)i);
            v0 += Vector.LoadUnsafe(ref r0, (nuint)i) * wv;
            v1 += Vector.LoadUnsafe(ref r1, (nuint)i) * wv;
            v2 += Vector.LoadUnsafe(ref r2, (nuint)i) * wv;
            v3 += Vector.LoadUnsafe(ref r3, (nuint)i) * wv;
        }
        s0 = Vector.Sum(v0); s1 = Vector.Sum(v1); s2 = Vector.Sum(v2); s3 = Vector.Sum(v3);
        for (; i < k; i++)
        {
            float wi = wRow[i];
            s0 += a0[i] * wi; s1 += a1[i] * wi; s2 += a2[i] * wi; s3 += a3[i] * wi;
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
