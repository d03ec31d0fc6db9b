using System.Runtime.InteropServices;
using System.Text;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

/// <summary>
/// <see cref="ICudaProbe"/> against the real driver: the library found by <see cref="NativeLibraries.CudaDriver"/>
/// and its entry points called directly, so each answer is the driver's own, not ILGPU's filtered view.
/// NOT RUN ON A GPU: in this repository's tests only the missing-library answer is real.
/// </summary>
public sealed unsafe class CudaDriverProbe : ICudaProbe
{
    private const int AttributeComputeCapabilityMajor = 75, AttributeComputeCapabilityMinor = 76;

    private readonly NativeLibrarySearch _search;
    private IntPtr _library;

    public CudaDriverProbe(NativeLibrarySearch? search = null) => _search = search ?? NativeLibraries.CudaDriver();

    public string? VisibleDevices => Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");

    public LoadedNativeLibrary? LoadDriver(out string? error)
    {
        LoadedNativeLibrary? loaded = _search.TryLoad(out error);
        _library = loaded?.Handle ?? IntPtr.Zero;
        return loaded;
    }

    public int Init() => ((delegate* unmanaged<uint, int>)Export("cuInit"))(0);

    public int DriverVersion(out int version)
    {
        int v = 0;
        int result = ((delegate* unmanaged<int*, int>)Export("cuDriverGetVersion"))(&v);
        version = v;
        return result;
    }

    public int DeviceCount(out int count)
    {
        int n = 0;
        int result = ((delegate* unmanaged<int*, int>)Export("cuDeviceGetCount"))(&n);
        count = n;
        return result;
    }

    public CudaDeviceFacts? Device(int ordinal)
    {
        int device = 0, major = 0, minor = 0;
        if (((delegate* unmanaged<int*, int, int>)Export("cuDeviceGet"))(&device, ordinal) != 0) return null;
        var getAttribute = (delegate* unmanaged<int*, int, int, int>)Export("cuDeviceGetAttribute");
        if (getAttribute(&major, AttributeComputeCapabilityMajor, device) != 0 || getAttribute(&minor, AttributeComputeCapabilityMinor, device) != 0)
            return null;
        byte* name = stackalloc byte[256];
        string text = ((delegate* unmanaged<byte*, int, int, int>)Export("cuDeviceGetName"))(name, 256, device) == 0
            ? Encoding.ASCII.GetString(name, 256).TrimEnd('\0')
            : $"device {ordinal}";
        return new CudaDeviceFacts(text, major, minor);
    }

    public string? ErrorName(int code)
    {
        byte* name = null;
        return ((delegate* unmanaged<int, byte**, int>)Export("cuGetErrorName"))(code, &name) == 0 && name != null
            ? Marshal.PtrToStringAnsi((IntPtr)name)
            : null;
    }

    public IReadOnlyList<IlgpuDeviceFacts> IlgpuDevices()
    {
        IlgpuCudaImport.Install();
        using Context context = Context.Create(b => b.Cuda(_ => true)); // every device ILGPU could query, supported or not
        var devices = new List<IlgpuDeviceFacts>();
        foreach (CudaDevice d in context.GetCudaDevices())
            devices.Add(new IlgpuDeviceFacts(d.Name, d.Architecture?.ToString(), d.InstructionSet?.ToString()));
        return devices;
    }

    private IntPtr Export(string name)
    {
        if (_library == IntPtr.Zero) throw new InvalidOperationException("load the driver first (LoadDriver)");
        return NativeLibrary.TryGetExport(_library, name, out IntPtr address)
            ? address
            : throw new ModelException($"the CUDA driver library has no {name}; the driver is too old or not an NVIDIA driver");
    }
}
