using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    private Cublas? _cublas;

    /// <summary>
    /// GPU GEMM with a fused epilogue (ILGPU kinds only; the cpu device uses <see cref="CpuGemm.Run"/>):
    /// a warp-per-column kernel for m ≤ 4 (decoding), a 64×64 register-blocked kernel otherwise.
    /// Each kernel is compiled once per epilogue type and cached in this context.
    /// </summary>
    public void Gemm<TEpilogue>(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        if (IsCpu)
            throw new InvalidOperationException("Gemm<TEpilogue> with a GPU epilogue needs an ILGPU device; on cpu call CpuGemm.Run with an ICpuGemmEpilogue");
        GemmChecks.Check(a, w, c, m, n, k);
        if (m == 0 || n == 0) return;
        if (w.IsBf16)
        {
            GemmBf16(a, w, c, m, n, k, epilogue);
            return;
        }
        if (_cublas is not null)
        {
            _cublas.Sgemm(a.View, w.View, c.View, m, n, k);
            if (typeof(TEpilogue) == typeof(NoEpilogue)) return;
            var apply = CachedKernel("gemm-epilogue", typeof(TEpilogue), accelerator =>
                accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, TEpilogue>(GemmEpilogueKernel.Run));
            apply(m * n, c.View, n, epilogue);
            return;
        }
        if (m <= GemmSkinnyKernel.MaxRows)
        {
            var skinny = CachedKernel("gemm-skinny", typeof(TEpilogue), accelerator =>
                accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, TEpilogue>(
                    GemmSkinnyKernel.Run));
            int warpSize = Accelerator.WarpSize;
            int groups = (n + GemmSkinnyKernel.WarpsPerGroup - 1) / GemmSkinnyKernel.WarpsPerGroup;
            skinny(new KernelConfig(groups, GemmSkinnyKernel.WarpsPerGroup * warpSize), a.View, w.View, c.View, m, n, k, epilogue);
            return;
        }
        var blocked = CachedKernel("gemm-blocked", typeof(TEpilogue), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, TEpilogue>(
                GemmBlockedKernel.Run));
        const int block = GemmBlockedKernel.Block, threads = GemmBlockedKernel.Threads;
        var grid = new Index2D((n + block - 1) / block, (m + block - 1) / block);
        blocked(new KernelConfig(grid, new Index2D(threads, threads)), a.View, w.View, c.View, m, n, k, epilogue);
    }

    /// <summary>bf16 weights on an ILGPU device: the f32 kernels' launch shapes with 16-bit weight loads (cuBLAS is not used).</summary>
    private void GemmBf16<TEpilogue>(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        if (m <= GemmSkinnyKernel.MaxRows)
        {
            var skinny = CachedKernel("gemm-bf16-skinny", typeof(TEpilogue), accelerator =>
                accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<float>, int, int, int, TEpilogue>(
                    GemmBf16Kernels.Skinny));
            int groups = (n + GemmSkinnyKernel.WarpsPerGroup - 1) / GemmSkinnyKernel.WarpsPerGroup;
            skinny(new KernelConfig(groups, GemmSkinnyKernel.WarpsPerGroup * Accelerator.WarpSize), a.View, w.Bf16View, c.View, m, n, k, epilogue);
            return;
        }
        var blocked = CachedKernel("gemm-bf16-blocked", typeof(TEpilogue), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<float>, int, int, int, TEpilogue>(
                GemmBf16Kernels.Blocked));
        const int block = GemmBlockedKernel.Block, threads = GemmBlockedKernel.Threads;
        var grid = new Index2D((n + block - 1) / block, (m + block - 1) / block);
        blocked(new KernelConfig(grid, new Index2D(threads, threads)), a.View, w.Bf16View, c.View, m, n, k, epilogue);
    }

    /// <summary>
    /// Routes GPU GEMMs of this context through cuBLAS (cuda device only), with epilogues applied by a
    /// separate in-place kernel. Throws a ModelException when no cuBLAS library can be loaded.
    /// Not exercised by the tests here (no GPU); the ILGPU kernels remain the default.
    /// </summary>
    public void EnableCublas()
    {
        if (Kind != DeviceKind.Cuda)
            throw new InvalidOperationException($"cuBLAS needs the cuda device, this context is {Kind.Name()}");
        _cublas ??= new Cublas((CudaAccelerator)Accelerator);
    }

    public bool UsesCublas => _cublas is not null;

    /// <summary>Plain GEMM on any device: c[m, n] = Σ_k a[m, k] · w[n, k].</summary>
    public void Gemm(DeviceTensor a, DeviceTensor w, DeviceTensor c, int m, int n, int k)
    {
        if (IsCpu) CpuGemm.Run(a, w, c, m, n, k, new NoEpilogue());
        else Gemm(a, w, c, m, n, k, new NoEpilogue());
    }
}
