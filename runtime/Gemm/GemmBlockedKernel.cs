using ILGPU;

namespace Qwen2VL.Runtime;

/// <summary>
/// ILGPU GEMM c[m, n] = epilogue(Σ_k a[m, k] · w[n, k]) for m ≥ 5, register-blocked:
/// a group of 16×16 threads computes a 64×64 block of c, each thread a 4×4 sub-grid at rows ty + 16i and
/// columns tx + 16j. Per step of 16 along k the group stages a 64×16 slice of a and of w in shared memory
/// (loads coalesced along k, stored transposed so the inner loop reads rows of the slice), and each thread
/// does 16 multiply-adds per 8 shared loads. The epilogue runs at the store.
/// </summary>
internal static class GemmBlockedKernel
{
    public const int Block = 64;        // rows and columns of c per group
    public const int Threads = 16;      // threads per group side
    private const int Depth = 16;       // k per shared-memory stage
    private const int Stride = Block + 1; // padded shared row: transposed stores avoid bank conflicts

    public static void Run<TEpilogue>(ArrayView<float> a, ArrayView<float> w, ArrayView<float> c,
        int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        ArrayView<float> aStage = SharedMemory.Allocate<float>(Depth * Stride); // [kk, row]
        ArrayView<float> wStage = SharedMemory.Allocate<float>(Depth * Stride); // [kk, column]
        int tx = Group.IdxX, ty = Group.IdxY, thread = ty * Threads + tx;
        int rowBase = Grid.IdxY * Block, colBase = Grid.IdxX * Block;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < k; k0 += Depth)
        {
            // 64×16 elements per operand, 256 threads: four loads each, 16 consecutive threads per row.
            for (int load = 0; load < 4; load++)
            {
                int index = thread + load * Threads * Threads;
                int r = index / Depth, kk = index % Depth, gk = k0 + kk;
                int gm = rowBase + r, gn = colBase + r;
                aStage[kk * Stride + r] = gm < m && gk < k ? a[gm * k + gk] : 0f;
                wStage[kk * Stride + r] = gn < n && gk < k ? w[gn * k + gk] : 0f;
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
