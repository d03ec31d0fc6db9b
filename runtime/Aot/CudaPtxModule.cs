using System.Runtime.InteropServices;
using System.Text;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// A PTX file loaded through the CUDA driver (<c>cuModuleLoadData</c>), for running ahead-of-time builds without
/// ILGPU's JIT. Loads into the calling thread's current CUDA context (bind the accelerator first).
/// NOT TESTED ON A GPU: only the missing-driver path runs in this repository's tests.
/// </summary>
public sealed class CudaPtxModule : IDisposable
{
    private IntPtr _module;

    private CudaPtxModule(IntPtr module) => _module = module;

    /// <summary>Loads PTX text; the driver compiles it for the current device.</summary>
    public static unsafe CudaPtxModule Load(byte[] ptx)
    {
        var api = CudaDriver.Api;
        var text = new byte[ptx.Length + 1]; // the driver reads PTX as a NUL-terminated string
        ptx.CopyTo(text, 0);
        IntPtr module;
        fixed (byte* data = text)
            CudaDriver.Check(api.ModuleLoadData(&module, data), "cuModuleLoadData");
        return new CudaPtxModule(module);
    }

    /// <summary>The <c>CUfunction</c> of an entry point (the manifest's <c>entryPoint</c>).</summary>
    public unsafe IntPtr GetFunction(string entryPoint)
    {
        ObjectDisposedException.ThrowIf(_module == IntPtr.Zero, this);
        var name = Encoding.ASCII.GetBytes(entryPoint + "\0");
        IntPtr function;
        fixed (byte* n = name)
            CudaDriver.Check(CudaDriver.Api.ModuleGetFunction(&function, _module, n), $"cuModuleGetFunction({entryPoint})");
        return function;
    }

    public unsafe void Dispose()
    {
        if (_module == IntPtr.Zero) return;
        var module = _module;
        _module = IntPtr.Zero;
        CudaDriver.Check(CudaDriver.Api.ModuleUnload(module), "cuModuleUnload");
    }
}

/// <summary>The few CUDA driver entry points the PTX loader needs, resolved from libcuda at first use.</summary>
internal static unsafe class CudaDriver
{
    private static readonly Lazy<Functions> Loaded = new(() => Open(NativeLibraries.CudaDriver()));

    public static Functions Api => Loaded.Value;

    public sealed class Functions
    {
        public delegate* unmanaged<uint, int> Init;
        public delegate* unmanaged<IntPtr*, byte*, int> ModuleLoadData;
        public delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunction;
        public delegate* unmanaged<IntPtr, int> ModuleUnload;
        public delegate* unmanaged<int, byte**, int> GetErrorName;
    }

    /// <summary>Loads the driver library <paramref name="search"/> finds first and initialises the driver.</summary>
    public static Functions Open(NativeLibrarySearch search)
    {
        IntPtr library = search.TryLoad(out string? missing)?.Handle
                         ?? throw new AotException($"{missing} (or run with ILGPU's JIT instead of --no-jit)");
        var api = new Functions
        {
            Init = (delegate* unmanaged<uint, int>)Export(library, "cuInit"),
            ModuleLoadData = (delegate* unmanaged<IntPtr*, byte*, int>)Export(library, "cuModuleLoadData"),
            ModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)Export(library, "cuModuleGetFunction"),
            ModuleUnload = (delegate* unmanaged<IntPtr, int>)Export(library, "cuModuleUnload"),
            GetErrorName = (delegate* unmanaged<int, byte**, int>)Export(library, "cuGetErrorName"),
        };
        Check(api.Init(0), "cuInit(0)", api);
        return api;
    }

    /// <summary>Throws unless <paramref name="result"/> is CUDA_SUCCESS, naming the call and the driver's error name.</summary>
    public static void Check(int result, string call) => Check(result, call, Api);

    private static void Check(int result, string call, Functions api)
    {
        if (result == 0) return;
        byte* name = null;
        var error = api.GetErrorName(result, &name) == 0 && name != null ? Marshal.PtrToStringAnsi((IntPtr)name) : null;
        throw new AotException($"CUDA driver call {call} failed with {error ?? "error"} ({result})");
    }

    private static IntPtr Export(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? address
            : throw new AotException($"the CUDA driver library has no {name}; the driver is too old or not a CUDA driver");
}
