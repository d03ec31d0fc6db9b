using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

/// <summary>
/// ILGPU GEMM c[m, n] = epilogue(Σ_k a[m, k] · w[n, k]) with 16×16 shared-memory tiles: each group loads
/// a 16×16 tile of a and of w per step of k (coalesced along k, since both are row-major in k), then every
/// thread accumulates its own output. The epilogue runs at the store, so bias / activation / residual
/// cost no extra pass over c.
/// </summary>
internal static class GemmKernels
{
    public const int Tile = 16;

    // Row stride of the shared w tile: one spare column so threads reading a column hit distinct banks.
    private const int PaddedTile = Tile + 1;

    public static void Tiled<TEpilogue>(ArrayView<float> a, ArrayView<float> w, ArrayView<float> c,
        int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        ArrayView<float> aTile = SharedMemory.Allocate<float>(Tile * Tile);
        ArrayView<float> wTile = SharedMemory.Allocate<float>(Tile * PaddedTile);
        int tx = Group.IdxX, ty = Group.IdxY;
        int row = Grid.IdxY * Tile + ty;              // output row of this thread
        int col = Grid.IdxX * Tile + tx;              // output column of this thread
        int wRow = Grid.IdxX * Tile + ty;             // w row this thread loads (the group's columns)

        float acc = 0f;
        for (int k0 = 0; k0 < k; k0 += Tile)
        {
            int kk = k0 + tx;
            aTile[ty * Tile + tx] = row < m && kk < k ? a[row * k + kk] : 0f;
            wTile[ty * PaddedTile + tx] = wRow < n && kk < k ? w[wRow * k + kk] : 0f;
            Group.Barrier();
            for (int i = 0; i < Tile; i++)
                acc += aTile[ty * Tile + i] * wTile[tx * PaddedTile + i];
            Group.Barrier();
        }
        if (row < m && col < n)
            c[row * n + col] = epilogue.Apply(row, col, acc);
    }
}

public sealed partial class ComputeContext
{
    /// <summary>
    /// GPU GEMM with a fused epilogue (ILGPU kinds only; the cpu device uses <see cref="CpuGemm.Run"/>).
    /// The kernel is compiled once per epilogue type and cached in this context.
    /// </summary>
    public void Gemm<TEpilogue>(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        if (IsCpu)
            throw new InvalidOperationException("Gemm<TEpilogue> with a GPU epilogue needs an ILGPU device; on cpu call CpuGemm.Run with an ICpuGemmEpilogue");
        GemmChecks.Check(a, w, c, m, n, k);
        if (m == 0 || n == 0) return;
        var kernel = CachedKernel("gemm-tiled", typeof(TEpilogue), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, TEpilogue>(
                GemmKernels.Tiled));
        var grid = new Index2D((n + GemmKernels.Tile - 1) / GemmKernels.Tile, (m + GemmKernels.Tile - 1) / GemmKernels.Tile);
        var group = new Index2D(GemmKernels.Tile, GemmKernels.Tile);
        kernel(new KernelConfig(grid, group), a.View, w.View, c.View, m, n, k, epilogue);
    }

    /// <summary>Plain GEMM on any device: c[m, n] = Σ_k a[m, k] · w[n, k].</summary>
    public void Gemm(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k)
    {
        if (IsCpu) CpuGemm.Run(a, w, c, m, n, k, new NoEpilogue());
        else Gemm(a, w, c, m, n, k, new NoEpilogue());
    }
}
