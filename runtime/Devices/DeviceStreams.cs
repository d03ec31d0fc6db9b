using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

/// <summary>
/// Gives an accelerator its own stream in place of the one it starts with. ILGPU's CUDA accelerator starts on the
/// legacy default stream (the null stream), which CUDA cannot capture into a graph and which serialises with every
/// other stream of the context. Every ILGPU launch, copy and memset that names no stream reads
/// <see cref="Accelerator.DefaultStream"/> at call time (the kernel launchers ILGPU returns do too), so replacing it
/// once after creation moves all the runtime's and the generated runners' work onto the new stream.
/// </summary>
/// <remarks>
/// ILGPU 1.5.3 has no public setter (<c>DefaultStream</c> is <c>protected set</c>): this calls it by reflection and
/// fails in one line if an ILGPU version lacks it. On CUDA the stream is created blocking (<c>CU_STREAM_DEFAULT</c>),
/// so anything still issued on the null stream (a library that ignores our stream) stays ordered with it, and a
/// capture fails loudly rather than silently missing such work. The accelerator owns the stream and disposes it.
/// </remarks>
[UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "ILGPU is a TrimmerRootAssembly in the publish profile: its members are kept.")]
public static class DeviceStreams
{
    /// <summary>Makes <paramref name="stream"/> (created by <paramref name="accelerator"/>) its default stream.</summary>
    public static void UseAsDefault(Accelerator accelerator, AcceleratorStream stream)
    {
        if (stream.Accelerator != accelerator)
            throw new ArgumentException("the stream belongs to another accelerator", nameof(stream));
        MethodInfo setter = typeof(Accelerator).GetProperty(nameof(Accelerator.DefaultStream))?.GetSetMethod(nonPublic: true)
                            ?? throw new InvalidOperationException($"this ILGPU ({CudaDiscovery.IlgpuVersion()}) has no settable Accelerator.DefaultStream; its own null stream stays in use");
        accelerator.Synchronize(); // nothing queued on the old stream may overtake work on the new one
        setter.Invoke(accelerator, [stream]);
    }

    /// <summary>A CUDA accelerator's own blocking stream, made its default (see the remarks).</summary>
    public static CudaStream UseOwnStream(CudaAccelerator accelerator)
    {
        CudaStream stream = accelerator.CreateStream(StreamFlags.CU_STREAM_DEFAULT);
        UseAsDefault(accelerator, stream);
        return stream;
    }
}
