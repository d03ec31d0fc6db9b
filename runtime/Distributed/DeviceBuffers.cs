namespace Qwen2VL.Runtime.Distributed;

/// <summary>
/// A tensor's elements as a <see cref="CommBuffer"/>: the managed array on the CPU path, ILGPU's native buffer on its
/// CPU accelerator (host memory), CUDA device memory on a GPU (for NCCL; host backends stage GPU tensors through the
/// host, see <see cref="NeedsStaging"/>). The caller synchronises the device before handing a buffer over.
/// </summary>
public static class DeviceBuffers
{
    public static CommBuffer Of(ComputeContext ctx, DeviceTensor t)
    {
        if (t.IsInt) throw new ArgumentException($"collectives move float32 tensors here; got {t}");
        if (ctx.IsCpu) return CommBuffer.Of(t.HostArray, t.Offset, t.Length);
        return CommBuffer.OfPointer(t.NativeAddress, t.Length, CommDType.F32, onDevice: ctx.Kind == DeviceKind.Cuda);
    }

    /// <summary>True when <paramref name="comm"/> cannot read this device's memory (a host backend and a CUDA device).</summary>
    public static bool NeedsStaging(ComputeContext ctx, ICommunicator comm) => ctx.Kind == DeviceKind.Cuda && !comm.TakesDeviceMemory;
}
