using ILGPU;

namespace Qwen2VL.Runtime;

/// <summary>
/// The ILGPU GEMMs of <see cref="GemmSkinnyKernel"/> and <see cref="GemmBlockedKernel"/> with bf16 weights: w is an
/// <c>ArrayView&lt;ushort&gt;</c> of bf16 bit patterns (16-bit loads, half the bytes), widened to f32 by a shift where
/// it is read; a, the accumulation, the epilogue and c stay f32. Same launch shapes as the f32 kernels.
/// </summary>
internal static class GemmBf16Kernels
{
    /// <summary>A bf16 bit pattern as the f32 it denotes (exact).</summary>
    public static float Widen(ushort bits) => Interop.IntAsFloat((uint)bits << 16);

    /// <summary>m ≤ 4 (decoding): one warp per output column, lanes strided along k, shuffle-tree reduction.</summary>
    public static void Skinny<TEpilogue>(ArrayView<float> a, ArrayView<ushort> w, ArrayView<float> c,
        int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        int col = Grid.IdxX * GemmSkinnyKernel.WarpsPerGroup + Warp.WarpIdx;
        int lane = Warp.LaneIdx;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (col < n)
        {
            for (int kk = lane; kk < k; kk += Warp.WarpSize)
            {
                float wv = Widen(w[col * k + kk]);
                s0 += a[kk] * wv;
                if (m > 1) s1 += a[k + kk] * wv;
                if (m > 2) s2 += a[2 * k + kk] * wv;
                if (m > 3) s3 += a[3 * k + kk] * wv;
            }
        }
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
        {
            s0 += Warp.ShuffleDown(s0, offset);
            s1 += Warp.ShuffleDown(s1, offset);
            s2 += Warp.ShuffleDown(s2, offset);
            s3 += Warp.ShuffleDown(s3, offset);
        }
        if (lane != 0 || col >= n) return;
        c[col] = epilogue.Apply(0, col, s0);
        if (m > 1) c[n + col] = epilogue.Apply(1, col, s1);
        if (m > 2) c[2 * n + col] = epilogue.Apply(2, col, s2);
        if (m > 3) c[3 * n + col] = epilogue.Apply(3, col, s3);
    }

    private const int Block = GemmBlockedKernel.Block, Threads = GemmBlockedKernel.Threads, Depth = 16, Stride = Block + 1;

    /// <summary>m ≥ 5: 64×64 blocks of c per group of 16×16 threads, 4×4 per thread; w widened as it is staged.</summary>
    public static void Blocked<TEpilogue>(ArrayView<float> a, ArrayView<ushort> w, ArrayView<float> c,
        int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        ArrayView<float> aStage = SharedMemory.Allocate<float>(Depth * Stride);
        ArrayView<float> wStage = SharedMemory.Allocate<float>(Depth * Stride);
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int rowBase = Grid.IdxY * Block, colBase = Grid.IdxX * Block;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < k; k0 += Depth)
        {
            for (int load = 0; load < 4; load++)
            {
                int index = thread + load * Threads * Threads;
                int r = index / Depth, kk = index % Depth, gk = k0 + kk;
                int gm = rowBase + r, gn = colBase + r;
                aStage[kk * Stride + r] = gm < m && gk < k ? a[gm * k + gk] : 0f;
                wStage[kk * Stride + r] = gn < n && gk < k ? Widen(w[gn * k + gk]) : 0f;
            }
            Group.Barrier();
            for (int kk = 0; kk < Depth; kk++)
            {
                int at = kk * Stride;
                float a0 = aStage[at + ty], a1 = aStage[at + ty + 16], a2 = aStage[at + ty + 32], a3 = aStage[at + ty + 48];
                float w0 = wStage[at + tx], w1 = wStage[at + tx + 16], w2 = wStage[at + tx + 32], w3 = wStage[at + tx + 48];
                c00 += a0 * w0; c01 += a0 * w1; c02 += a0 * w2; c03 += a0 * w3;
                c10 += a1 * w0; c11 += a1 * w1; c12 += a1 * w2; c13 += a1 * w3;
                c20 += a2 * w0; c21 += a2 * w1; c22 += a2 * w2; c23 += a2 * w3;
                c30 += a3 * w0; c31 += a3 * w1; c32 += a3 * w2; c33 += a3 * w3;
            }
            Group.Barrier();
        }

        int row = rowBase + ty, col = colBase + tx;
        StoreRow(c, m, n, epilogue, row, col, c00, c01, c02, c03);
        StoreRow(c, m, n, epilogue, row + 16, col, c10, c11, c12, c13);
        StoreRow(c, m, n, epilogue, row + 32, col, c20, c21, c22, c23);
        StoreRow(c, m, n, epilogue, row + 48, col, c30, c31, c32, c33);
    }

    private static void StoreRow<TEpilogue>(ArrayView<float> c, int m, int n, TEpilogue epilogue,
        int row, int col, float v0, float v1, float v2, float v3)
        where TEpilogue : struct, IGemmEpilogue
    {
        if (row >= m) return;
        if (col < n) c[row * n + col] = epilogue.Apply(row, col, v0);
        if (col + 16 < n) c[row * n + col + 16] = epilogue.Apply(row, col + 16, v1);
        if (col + 32 < n) c[row * n + col + 32] = epilogue.Apply(row, col + 32, v2);
        if (col + 48 < n) c[row * n + col + 48] = epilogue.Apply(row, col + 48, v3);
    }
}
