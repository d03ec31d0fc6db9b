using System.Buffers;
using System.Runtime.Intrinsics;

namespace Qwen2VL.Runtime;

/// <summary>Which vector width the bf16 CPU kernels use; the tests force each one to check the fallbacks.</summary>
public enum Bf16Simd
{
    /// <summary>Plain scalar loops (no usable vector unit).</summary>
    Scalar = 0,
    /// <summary>AVX2-class: 16 bf16 weights per 256-bit load.</summary>
    Vector256 = 256,
    /// <summary>AVX-512-class: 32 bf16 weights per 512-bit load.</summary>
    Vector512 = 512,
}

/// <summary>
/// c[m, n] = Σ_k a[m, k] · w[n, k] with f32 activations a, bf16 weights w (the raw 16-bit patterns, PyTorch Linear
/// layout: one output per row) and f32 accumulation. A decode step is bound by the bytes of weights it reads, so
/// keeping w in 16 bits halves its time; the arithmetic stays f32.
///
/// Widening without shuffles: one vector load of w as 32-bit lanes holds bf16 pairs (w[2i], w[2i+1]) — little-endian,
/// so w[2i] is the low half. <c>lane &lt;&lt; 16</c> is w[2i] as f32 and <c>lane &amp; 0xFFFF0000</c> is w[2i+1] as f32
/// (a bf16 is the upper half of an f32). So each block of B weights gives the even-indexed ones in one f32 vector and
/// the odd-indexed ones in another, and a's rows are reordered once per call to match (B/2 even elements, then the B/2
/// odd ones, per block). A dot product does not care about the order of its terms, so nothing else changes. The last
/// k mod B elements run scalar on the original order.
///
/// Work is split like <see cref="CpuGemm"/>: tiles of 4 rows × a column block whose weight rows stay in L2, 4×2 register
/// blocks for full row blocks (prefill), 1×4 for the remaining rows (decode), tiles spread over all cores.
/// </summary>
public static class CpuBf16Gemm
{
    private const int RowBlock = 4;
    private const int MaxColumnBlock = 64;
    private const int WBlockBytes = 256 * 1024;

    /// <summary>The widest vector path this CPU runs natively (Vector512 needs AVX-512F, Vector256 AVX2).</summary>
    public static Bf16Simd Best { get; } =
        Vector512.IsHardwareAccelerated ? Bf16Simd.Vector512 : Vector256.IsHardwareAccelerated ? Bf16Simd.Vector256 : Bf16Simd.Scalar;

    /// <summary>c[m, n] = Σ_k a[m, k] · w[n, k] on the CPU, bf16 w, with <see cref="Best"/>.</summary>
    public static void Run(ReadOnlyMemory<float> a, ReadOnlyMemory<ushort> w, Memory<float> c, int m, int n, int k) =>
        Run(a, w, c, m, n, k, Best);

    /// <summary>The same with a chosen vector path (a path wider than the hardware still computes correctly, emulated).</summary>
    public static void Run(ReadOnlyMemory<float> a, ReadOnlyMemory<ushort> w, Memory<float> c, int m, int n, int k, Bf16Simd simd)
    {
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"GEMM sizes must be non-negative: m={m}, n={n}, k={k}");
        if ((long)m * k > a.Length || (long)n * k > w.Length || (long)m * n > c.Length)
            throw new ArgumentException(
                $"bf16 GEMM m={m} n={n} k={k} needs a ≥ {(long)m * k}, w ≥ {(long)n * k}, c ≥ {(long)m * n} elements; got {a.Length}, {w.Length}, {c.Length}");
        if (simd is not (Bf16Simd.Scalar or Bf16Simd.Vector256 or Bf16Simd.Vector512))
            throw new ArgumentOutOfRangeException(nameof(simd), simd, "unknown bf16 vector path");
        if (m == 0 || n == 0) return;

        int block = (int)simd / 16;                      // bf16 weights per vector load: 32, 16, or 0 (scalar)
        int kMain = block == 0 ? 0 : k - k % block;
        float[] reordered = ArrayPool<float>.Shared.Rent(Math.Max(1, m * kMain));
        try
        {
            Reorder(a.Span, reordered, m, k, kMain, block);
            int rowBlocks = (m + RowBlock - 1) / RowBlock;
            // A multiple of 4 between 8 and 64 columns: 64 for k ≤ 2048, 8 for k ≥ 16384.
            int columnBlock = Math.Clamp(WBlockBytes / (sizeof(ushort) * Math.Max(k, 1)), 8, MaxColumnBlock) & ~3;
            int columnBlocks = (n + columnBlock - 1) / columnBlock;
            int tiles = rowBlocks * columnBlocks;
            var job = new Bf16Tile(a, reordered, w, c, m, n, k, kMain, simd, rowBlocks, columnBlock);
            if ((long)m * n * k < 1 << 18 || tiles == 1)
                for (int t = 0; t < tiles; t++) job.Run(t);
            else
                Parallel.For(0, tiles, job.Run);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(reordered);
        }
    }

    /// <summary>Each row's first kMain elements, per block of B: the B/2 even-indexed elements, then the B/2 odd ones.</summary>
    private static void Reorder(ReadOnlySpan<float> a, Span<float> reordered, int m, int k, int kMain, int block)
    {
        int half = block / 2;
        for (int r = 0; r < m; r++)
        {
            ReadOnlySpan<float> row = a.Slice(r * k, kMain);
            Span<float> dst = reordered.Slice(r * kMain, kMain);
            for (int b = 0; b < kMain; b += block)
                for (int i = 0; i < half; i++)
                {
                    dst[b + i] = row[b + 2 * i];
                    dst[b + half + i] = row[b + 2 * i + 1];
                }
        }
    }

    /// <summary>One tile's worth of work; a class so Parallel.For can call it without capturing spans.</summary>
    private sealed class Bf16Tile(ReadOnlyMemory<float> a, float[] reordered, ReadOnlyMemory<ushort> w, Memory<float> c,
        int m, int n, int k, int kMain, Bf16Simd simd, int rowBlocks, int columnBlock)
    {
        public void Run(int t)
        {
            using MemoryHandle pin = w.Pin(); // the decode kernel prefetches by address

            int rowStart = t % rowBlocks * RowBlock, columnStart = t / rowBlocks * columnBlock;
            int rows = Math.Min(RowBlock, m - rowStart), end = Math.Min(n, columnStart + columnBlock);
            ReadOnlySpan<float> aSpan = a.Span, ap = reordered;
            ReadOnlySpan<ushort> wSpan = w.Span;
            Span<float> cSpan = c.Span;
            int j = columnStart;
            if (rows == RowBlock)
            {
                var rowsA = new Bf16Rows(ap, aSpan, rowStart, kMain, k);
                for (; j + 1 < end; j += 2)
                {
                    Bf16Kernels.Dot4x2(simd, rowsA, wSpan.Slice(j * k, k), wSpan.Slice((j + 1) * k, k), kMain, out Bf16Block4x2 s);
                    int o = rowStart * n + j;
                    cSpan[o] = s.R0C0; cSpan[o + 1] = s.R0C1; o += n;
                    cSpan[o] = s.R1C0; cSpan[o + 1] = s.R1C1; o += n;
                    cSpan[o] = s.R2C0; cSpan[o + 1] = s.R2C1; o += n;
                    cSpan[o] = s.R3C0; cSpan[o + 1] = s.R3C1;
                }
                for (; j < end; j++)
                    for (int r = rowStart; r < rowStart + RowBlock; r++)
                        cSpan[r * n + j] = Bf16Kernels.Dot1(simd, ap.Slice(r * kMain, kMain), aSpan.Slice(r * k, k), wSpan.Slice(j * k, k), kMain);
                return;
            }
            for (int r = rowStart; r < rowStart + rows; r++)
            {
                ReadOnlySpan<float> xr = ap.Slice(r * kMain, kMain), ar = aSpan.Slice(r * k, k);
                int col = columnStart;
                for (; col + 3 < end; col += 4)
                {
                    Bf16Kernels.Dot1x4(simd, xr, ar, wSpan.Slice(col * k, k), wSpan.Slice((col + 1) * k, k),
                        wSpan.Slice((col + 2) * k, k), wSpan.Slice((col + 3) * k, k), kMain, out float s0, out float s1, out float s2, out float s3);
                    int o = r * n + col;
                    cSpan[o] = s0; cSpan[o + 1] = s1; cSpan[o + 2] = s2; cSpan[o + 3] = s3;
                }
                for (; col < end; col++)
                    cSpan[r * n + col] = Bf16Kernels.Dot1(simd, xr, ar, wSpan.Slice(col * k, k), kMain);
            }
        }
    }
}

/// <summary>Four rows of a: reordered (first kMain elements) and original (for the scalar tail).</summary>
internal readonly ref struct Bf16Rows
{
    public readonly ReadOnlySpan<float> P0, P1, P2, P3, A0, A1, A2, A3;

    public Bf16Rows(ReadOnlySpan<float> reordered, ReadOnlySpan<float> a, int rowStart, int kMain, int k)
    {
        P0 = reordered.Slice(rowStart * kMain, kMain); P1 = reordered.Slice((rowStart + 1) * kMain, kMain);
        P2 = reordered.Slice((rowStart + 2) * kMain, kMain); P3 = reordered.Slice((rowStart + 3) * kMain, kMain);
        A0 = a.Slice(rowStart * k, k); A1 = a.Slice((rowStart + 1) * k, k);
        A2 = a.Slice((rowStart + 2) * k, k); A3 = a.Slice((rowStart + 3) * k, k);
    }
}

internal struct Bf16Block4x2
{
    public float R0C0, R0C1, R1C0, R1C1, R2C0, R2C1, R3C0, R3C1;
}
