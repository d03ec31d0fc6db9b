using ILGPU;

namespace Qwen2VL.Runtime;

/// <summary>
/// ILGPU GEMM for m ≤ 4 (token-by-token decoding), where a 64-row block would idle most of its threads
/// and the cost is reading w once. One warp per output column: lanes stride along k (coalesced reads of
/// the w row), keep one partial sum per row of a, and combine them with a shuffle tree; lane 0 applies
/// the epilogue and stores.
/// </summary>
internal static class GemmSkinnyKernel
{
    public const int MaxRows = 4;
    public const int WarpsPerGroup = 4;

    public static void Run<TEpilogue>(ArrayView<float> a, ArrayView<float> w, ArrayView<float> c,
        int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        int col = Grid.IdxX * WarpsPerGroup + Warp.WarpIdx;
        int lane = Warp.LaneIdx;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (col < n)
        {
            for (int kk = lane; kk < k; kk += Warp.WarpSize)
            {
                float wv = w[col * k + kk];
                s0 += a[kk] * wv;
                if (m > 1) s1 += a[k + kk] * wv;
                if (m > 2) s2 += a[2 * k + kk] * wv;
                if (m > 3) s3 += a[3 * k + kk] * wv;
            }
        }
        // Every lane takes part in the shuffles, including those of a warp past the last column.
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
}
