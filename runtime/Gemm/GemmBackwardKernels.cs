using ILGPU;

namespace Qwen2VL.Runtime;

/// <summary>
/// Element strides of the two operands of c[i, j] (+)= Σ_p A(i, p) · B(p, j), with A(i, p) = a[i·ARow + p·ADepth]
/// and B(p, j) = b[p·BDepth + j·BCol]; one kernel serves a·b (NN) and aᵀ·b (TN).
/// </summary>
public struct GemmStrides
{
    public int M, N, K, ARow, ADepth, BDepth, BCol, Accumulate;
}

public struct ColumnSumArgs
{
    public int Rows, Cols, Accumulate;
}

/// <summary>
/// ILGPU kernels for the backward GEMMs: a 16×16 shared-memory tiled product (one output per thread, each
/// stage stages a 16×16 tile of A and of B), and a column sum with one thread per column (consecutive threads
/// read consecutive columns of a row, so the reads coalesce).
/// </summary>
internal static class GemmBackwardKernels
{
    public const int Tile = 16;

    public static void Strided(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmStrides s)
    {
        ArrayView<float> aTile = SharedMemory.Allocate<float>(Tile * (Tile + 1)); // [row, depth]
        ArrayView<float> bTile = SharedMemory.Allocate<float>(Tile * (Tile + 1)); // [depth, col]
        int tx = Group.IdxX, ty = Group.IdxY;
        int row = Grid.IdxY * Tile + ty, col = Grid.IdxX * Tile + tx;
        int aRowBase = Grid.IdxY * Tile;
        float acc = 0f;
        for (int p0 = 0; p0 < s.K; p0 += Tile)
        {
            // Thread (tx, ty) loads A(rowBase + ty, p0 + tx) and B(p0 + ty, col).
            int ap = p0 + tx, ai = aRowBase + ty;
            aTile[ty * (Tile + 1) + tx] = ai < s.M && ap < s.K ? a[ai * s.ARow + ap * s.ADepth] : 0f;
            int bp = p0 + ty;
            bTile[ty * (Tile + 1) + tx] = bp < s.K && col < s.N ? b[bp * s.BDepth + col * s.BCol] : 0f;
            Group.Barrier();
            for (int p = 0; p < Tile; p++)
                acc += aTile[ty * (Tile + 1) + p] * bTile[p * (Tile + 1) + tx];
            Group.Barrier();
        }
        if (row >= s.M || col >= s.N) return;
        int at = row * s.N + col;
        c[at] = s.Accumulate != 0 ? c[at] + acc : acc;
    }

    /// <summary><see cref="Strided"/> with b a bf16 weight: each element widened exactly (a 16-bit shift) as it is staged.</summary>
    public static void StridedBf16(ArrayView<float> a, ArrayView<ushort> b, ArrayView<float> c, GemmStrides s)
    {
        ArrayView<float> aTile = SharedMemory.Allocate<float>(Tile * (Tile + 1)); // [row, depth]
        ArrayView<float> bTile = SharedMemory.Allocate<float>(Tile * (Tile + 1)); // [depth, col]
        int tx = Group.IdxX, ty = Group.IdxY;
        int row = Grid.IdxY * Tile + ty, col = Grid.IdxX * Tile + tx;
        int aRowBase = Grid.IdxY * Tile;
        float acc = 0f;
        for (int p0 = 0; p0 < s.K; p0 += Tile)
        {
            int ap = p0 + tx, ai = aRowBase + ty;
            aTile[ty * (Tile + 1) + tx] = ai < s.M && ap < s.K ? a[ai * s.ARow + ap * s.ADepth] : 0f;
            int bp = p0 + ty;
            bTile[ty * (Tile + 1) + tx] = bp < s.K && col < s.N ? GemmBf16Kernels.Widen(b[bp * s.BDepth + col * s.BCol]) : 0f;
            Group.Barrier();
            for (int p = 0; p < Tile; p++)
                acc += aTile[ty * (Tile + 1) + p] * bTile[p * (Tile + 1) + tx];
            Group.Barrier();
        }
        if (row >= s.M || col >= s.N) return;
        int at = row * s.N + col;
        c[at] = s.Accumulate != 0 ? c[at] + acc : acc;
    }

    public static void ColumnSum(Index1D col, ArrayView<float> a, ArrayView<float> c, ColumnSumArgs args)
    {
        float sum = 0f;
        for (int r = 0; r < args.Rows; r++) sum += a[r * args.Cols + col];
        c[col] = args.Accumulate != 0 ? c[col] + sum : sum;
    }
}
