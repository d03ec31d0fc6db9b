using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

/// <summary>One GPU as the CUDA driver lists it.</summary>
public sealed record CudaDeviceFacts(string Name, int Major, int Minor)
{
    public string Architecture => $"sm_{Major}{Minor}";
}

/// <summary>One GPU as ILGPU sees it before its own filter: null architecture or instruction set means ILGPU lacks one.</summary>
public sealed record IlgpuDeviceFacts(string Name, string? Architecture, string? InstructionSet);

/// <summary>
/// The questions that tell apart the reasons ILGPU can list no CUDA device (it swallows every error while listing).
/// Implemented against the driver by <see cref="CudaDriverProbe"/>; tests answer them to simulate each cause.
/// </summary>
public interface ICudaProbe
{
    /// <summary>The driver library, or null with the one-line reason it was not found.</summary>
    LoadedNativeLibrary? LoadDriver(out string? error);

    /// <summary><c>cuInit(0)</c>'s result (0 = CUDA_SUCCESS).</summary>
    int Init();

    /// <summary><c>cuDriverGetVersion</c>: 13000 for CUDA 13.0.</summary>
    int DriverVersion(out int version);

    /// <summary><c>cuDeviceGetCount</c>.</summary>
    int DeviceCount(out int count);

    /// <summary>Name and compute capability of device <paramref name="ordinal"/>; null when the driver will not say.</summary>
    CudaDeviceFacts? Device(int ordinal);

    /// <summary><c>cuGetErrorName</c> (CUDA_ERROR_NO_DEVICE…), or null.</summary>
    string? ErrorName(int code);

    /// <summary>ILGPU's CUDA devices without its default filter (architecture and PTX ISA known and supported).</summary>
    IReadOnlyList<IlgpuDeviceFacts> IlgpuDevices();

    /// <summary>The process's CUDA_VISIBLE_DEVICES, or null when unset.</summary>
    string? VisibleDevices { get; }
}

/// <summary>
/// Why there is no usable CUDA device, in one line: the driver library missing, the driver failing to initialise (with
/// its error name and the usual cause), no device visible, or devices ILGPU does not accept — instead of ILGPU's
/// "no device" for every cause.
/// </summary>
public static class CudaDiscovery
{
    private const string UseCpu = "use --device cpu";

    /// <summary>The reason ILGPU listed no device, asked of <paramref name="probe"/> step by step.</summary>
    public static string WhyNoDevice(ICudaProbe probe)
    {
        if (probe.LoadDriver(out string? missing) is null)
            return missing ?? "the CUDA driver library did not load; " + UseCpu;

        int init = probe.Init();
        if (init != 0)
            return $"the CUDA driver did not initialise: cuInit returned {Name(probe, init)}{InitHint(init, probe.VisibleDevices)}; {UseCpu}";

        string driver = probe.DriverVersion(out int version) == 0 ? $"CUDA driver {FormatVersion(version)}" : "the CUDA driver";
        int countResult = probe.DeviceCount(out int count);
        if (countResult != 0)
            return $"{driver} could not count devices: cuDeviceGetCount returned {Name(probe, countResult)}; {UseCpu}";
        if (count == 0)
            return $"{driver} sees no GPU ({Visible(probe.VisibleDevices)}); {UseCpu}";

        var devices = Enumerable.Range(0, count).Select(i => probe.Device(i) is { } d ? $"{d.Name} ({d.Architecture})" : $"device {i}").ToArray();
        string listed = $"{driver} lists {count} device{(count == 1 ? "" : "s")} ({string.Join(", ", devices)})";
        return $"{listed} but ILGPU {IlgpuVersion()} uses none: {IlgpuReason(probe.IlgpuDevices(), FormatVersion(version))}; {UseCpu}";
    }

    /// <summary>
    /// One line for <c>info</c>: the CUDA devices ILGPU will use (name, architecture, PTX ISA, driver) and where the
    /// driver library came from, or why there are none.
    /// </summary>
    public static string Status(ICudaProbe probe)
    {
        try
        {
            IlgpuCudaImport.Install();
            using Context context = Context.Create(b => b.Cuda());
            var devices = context.GetCudaDevices();
            if (devices.Count == 0) return "cuda: unavailable: " + WhyNoDevice(probe);
            string library = IlgpuCudaImport.Resolved is { } resolved ? $", libcuda from {resolved.Path}" : "";
            var names = new List<string>();
            foreach (CudaDevice d in devices) names.Add($"{d.Name} ({d.Architecture}, {d.InstructionSet})");
            return $"cuda: {string.Join(", ", names)}, driver {devices[0].DriverVersion}{library}";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException or ModelException)
        {
            return "cuda: unavailable: " + e.Message.ReplaceLineEndings(" ");
        }
    }

    /// <summary>13000 → "13.0", 12040 → "12.4" (the driver's encoding: 1000·major + 10·minor).</summary>
    public static string FormatVersion(int version) => $"{version / 1000}.{version % 1000 / 10}";

    private static string IlgpuReason(IReadOnlyList<IlgpuDeviceFacts> seen, string driverVersion)
    {
        if (seen.Count == 0)
            return "its own device queries failed (ILGPU hides which; bench/gpu/gpu_probe.py checks each attribute it reads)";
        var reasons = seen.Select(d => d switch
        {
            { Architecture: null } => $"{d.Name}: it knows no such architecture",
            { InstructionSet: null } => $"{d.Name} ({d.Architecture}): it knows no PTX ISA for this architecture with driver {driverVersion}",
            _ => $"{d.Name} ({d.Architecture}): its PTX backend does not support PTX ISA {d.InstructionSet}",
        });
        return string.Join("; ", reasons);
    }

    private static string InitHint(int code, string? visible) => code switch
    {
        100 => $" (no NVIDIA GPU is visible to this process: check nvidia-smi; {Visible(visible)})",
        101 => $" (CUDA_VISIBLE_DEVICES names no existing GPU; {Visible(visible)})",
        35 => " (the driver is older than this CUDA version needs: update the NVIDIA driver)",
        803 or 804 => " (a CUDA forward-compatibility libcuda does not match the installed kernel driver: check LD_LIBRARY_PATH)",
        999 => " (often a driver library that does not match the loaded kernel module, or a GPU in a bad state: check nvidia-smi)",
        34 => " (this libcuda is a toolkit stub, not the driver: put the driver's libcuda.so.1 first on the library path)",
        _ => "",
    };

    private static string Visible(string? value) => value is null ? "CUDA_VISIBLE_DEVICES is unset" : $"CUDA_VISIBLE_DEVICES='{value}'";

    private static string Name(ICudaProbe probe, int code) => $"{probe.ErrorName(code) ?? "error"} ({code})";

    internal static string IlgpuVersion() => typeof(Context).Assembly.GetName().Version?.ToString(3) ?? "?";
}
