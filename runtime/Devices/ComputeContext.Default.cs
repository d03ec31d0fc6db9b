using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    /// <summary>The device a user gets when they do not choose: the first CUDA GPU when one is present, else the CPU.</summary>
    public static ComputeContext CreateDefault() => Create(DefaultKind());

    /// <summary>Cuda when ILGPU finds a CUDA device (driver installed and a GPU visible), Cpu otherwise.</summary>
    public static DeviceKind DefaultKind()
    {
        try
        {
            IlgpuCudaImport.Install(); // a driver-only machine has libcuda.so.1 but no libcuda.so
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count > 0 ? DeviceKind.Cuda : DeviceKind.Cpu;
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException)
        {
            return DeviceKind.Cpu; // no CUDA driver on this machine
        }
    }
}
