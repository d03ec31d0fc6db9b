using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;

namespace Qwen2VL.Runtime;

/// <summary>
/// Lets ILGPU's driver import find <c>libcuda.so.1</c>. ILGPU 1.5.3 declares <c>DllImport("cuda")</c>, which .NET
/// probes as <c>libcuda.so</c>/<c>cuda.so</c>/…: on a machine with only the driver (no toolkit developer package)
/// just <c>libcuda.so.1</c> exists, every probe misses, and ILGPU reports no device at all.
/// </summary>
/// <remarks>
/// This answers the load context's <see cref="AssemblyLoadContext.ResolvingUnmanagedDll"/> event rather than setting a
/// <see cref="NativeLibrary.SetDllImportResolver"/>: ILGPU sets its own resolver for the ILGPU assembly under WSL, and
/// an assembly takes only one (the second call throws). The event runs only after the default probing failed, so a
/// machine where <c>libcuda.so</c> resolves is untouched. Install it before ILGPU's CUDA API is first used; the
/// runtime does so wherever it creates an ILGPU CUDA context.
/// </remarks>
public static class IlgpuCudaImport
{
    /// <summary>The library name ILGPU imports the CUDA driver API under on Linux (<c>CudaAPI.LibNameLinux</c>).</summary>
    public const string ImportName = "cuda";

    private static readonly Lock Gate = new();
    private static bool _installed;
    private static LoadedNativeLibrary? _resolved;

    /// <summary>Where the resolver found the driver for ILGPU, once it has had to (null while the default probing sufficed).</summary>
    public static LoadedNativeLibrary? Resolved
    {
        get { lock (Gate) return _resolved; }
    }

    /// <summary>Subscribes the resolver once per process (further calls do nothing).</summary>
    public static void Install()
    {
        lock (Gate)
        {
            if (_installed) return;
            _installed = true;
            Assembly ilgpu = typeof(Context).Assembly;
            (AssemblyLoadContext.GetLoadContext(ilgpu) ?? AssemblyLoadContext.Default).ResolvingUnmanagedDll += Resolve;
        }
    }

    private static IntPtr Resolve(Assembly assembly, string name) => Resolve(assembly, name, () =>
    {
        LoadedNativeLibrary? driver = NativeLibraries.CudaDriver().TryLoad(out _);
        lock (Gate) _resolved ??= driver;
        return driver;
    });

    /// <summary>
    /// The handle for ILGPU's <c>cuda</c> import (<paramref name="find"/> searches the usual places), or zero for any
    /// other assembly or library, which leaves those to the next handler and the usual not-found error.
    /// </summary>
    internal static IntPtr Resolve(Assembly assembly, string name, Func<LoadedNativeLibrary?> find)
    {
        if (assembly != typeof(Context).Assembly || !string.Equals(name, ImportName, StringComparison.Ordinal) || OperatingSystem.IsWindows())
            return IntPtr.Zero;
        return find()?.Handle ?? IntPtr.Zero;
    }
}
