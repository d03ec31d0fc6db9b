using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

/// <summary>
/// Optional cuBLAS SGEMM for the cuda device (see <see cref="ComputeContext.EnableCublas"/>), bound at run
/// time so the runtime has no hard dependency on the CUDA toolkit. Math mode stays the cuBLAS default
/// (full float32, no TF32), so results match the ILGPU kernels within float rounding.
/// NOTE: written against the documented cuBLAS v2 API but not run in this repository's CI, which has no GPU.
/// </summary>
internal sealed unsafe class Cublas : IDisposable
{
    private const int OpN = 0, OpT = 1; // cublasOperation_t

    private readonly Accelerator _accelerator;
    private readonly IntPtr _library;
    private readonly IntPtr _handle;
    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, float*, float*, int, float*, int, float*, float*, int, int> _sgemm;

    public Cublas(CudaAccelerator accelerator)
    {
        _accelerator = accelerator;
        _library = NativeLibraries.Cublas().Load().Handle; // toolkit, then PyTorch's wheels; one line naming all places when absent
        var create = (delegate* unmanaged<IntPtr*, int>)Export("cublasCreate_v2");
        var setStream = (delegate* unmanaged<IntPtr, IntPtr, int>)Export("cublasSetStream_v2");
        _destroy = (delegate* unmanaged<IntPtr, int>)Export("cublasDestroy_v2");
        _sgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, float*, int, float*, int, float*, float*, int, int>)Export("cublasSgemm_v2");

        accelerator.Bind(); // cuBLAS works on the calling thread's current CUDA context
        IntPtr handle;
        Check(create(&handle));
        _handle = handle;
        // Same stream as the ILGPU kernels, so epilogue kernels and later launches are ordered after the GEMM.
        Check(setStream(_handle, ((CudaStream)accelerator.DefaultStream).StreamPtr));
    }

    /// <summary>
    /// Row-major c[m, n] = a[m, k] · w[n, k]ᵀ. cuBLAS is column-major, where the same memory holds
    /// cᵀ[n, m], aᵀ[k, m] and wᵀ[k, n]; so compute cᵀ = op(wᵀ)ᵀ · aᵀ, i.e. transa = T on w, transb = N on a.
    /// </summary>
    public void Sgemm(ArrayView<float> a, ArrayView<float> w, ArrayView<float> c, int m, int n, int k)
    {
        _accelerator.Bind();
        float alpha = 1f, beta = 0f;
        Check(_sgemm(_handle, OpT, OpN, n, m, k, &alpha,
            (float*)w.LoadEffectiveAddressAsPtr(), k,
            (float*)a.LoadEffectiveAddressAsPtr(), k, &beta,
            (float*)c.LoadEffectiveAddressAsPtr(), n));
    }

    private IntPtr Export(string name) =>
        NativeLibrary.TryGetExport(_library, name, out IntPtr address)
            ? address
            : throw new ModelException($"cuBLAS library lacks {name}; it is too old (need the v2 API)");

    private static void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0)
            throw new InvalidOperationException($"cuBLAS call failed with status {status}: {call}");
    }

    public void Dispose()
    {
        _accelerator.Bind();
        _destroy(_handle);
        NativeLibrary.Free(_library);
    }
}

/// <summary>Applies a GEMM epilogue in place after cuBLAS has stored the plain product.</summary>
internal static class GemmEpilogueKernel
{
    public static void Run<TEpilogue>(Index1D index, ArrayView<float> c, int n, TEpilogue epilogue)
        where TEpilogue : struct, IGemmEpilogue
    {
        int i = index;
        c[i] = epilogue.Apply(i / n, i % n, c[i]);
    }
}
