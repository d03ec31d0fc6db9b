using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

/// <summary>
/// One device the model runs on: allocation, transfers and the shared kernels (GEMM, attention).
/// For <see cref="DeviceKind.Cpu"/> there is no ILGPU accelerator at all; tensors are managed arrays and
/// the CPU kernels run directly on their spans.
/// </summary>
public sealed partial class ComputeContext : IDisposable
{
    private readonly Context? _context;
    private readonly Accelerator? _accelerator;
    private readonly Dictionary<(string Kernel, Type Specialization), Delegate> _kernels = new();
    private readonly List<object> _keptAlive = new();
    private bool _disposed;

    /// <summary>Warp size of the ilgpu-cpu simulator (as on NVIDIA GPUs).</summary>
    public const int SimulatorWarpSize = 32;

    /// <summary>Warps per group on the ilgpu-cpu simulator: groups of up to 256 threads.</summary>
    public const int SimulatorWarpsPerGroup = 8;

    public DeviceKind Kind { get; }

    /// <summary>Bytes this context moved between the host and its device, by direction (resettable).</summary>
    public TransferCounter Transfers { get; } = new();

    /// <summary>Device buffers this context has allocated so far (a hot path that reuses its buffers leaves it unchanged).</summary>
    public long Allocations => Interlocked.Read(ref _allocations);

    private long _allocations;

    /// <summary>
    /// Scratch buffers of the shared kernels (attention backward statistics…), kept and reused across calls so a
    /// step allocates nothing once warm; a later kernel on the same stream reuses them only after earlier ones ran.
    /// </summary>
    internal StagingBuffers Scratch => _scratch ??= new StagingBuffers(this);

    private StagingBuffers? _scratch;

    public bool IsCpu => Kind == DeviceKind.Cpu;
    public string DeviceName { get; }

    public Accelerator Accelerator =>
        _accelerator ?? throw new InvalidOperationException("the cpu device has no ILGPU accelerator; use the CPU kernels");

    private ComputeContext(DeviceKind kind, Context? context, Accelerator? accelerator, string name)
    {
        Kind = kind;
        _context = context;
        _accelerator = accelerator;
        DeviceName = name;
    }

    public static ComputeContext Create(DeviceKind kind)
    {
        switch (kind)
        {
            case DeviceKind.Cpu:
                return new ComputeContext(kind, null, null, $"cpu ({Environment.ProcessorCount} threads)");
            case DeviceKind.IlgpuCpu:
            {
                // EnableAlgorithms makes XMath (exp, erf helpers) usable inside kernels. The simulated device
                // mirrors a CUDA multiprocessor closely enough for our kernels: warp size 32 and groups of up
                // to 256 threads (the default simulator allows only 16, too few for a 16×16 GEMM tile).
                var device = new CPUDevice(SimulatorWarpSize, SimulatorWarpsPerGroup, 1);
                Context context = Context.Create(b => b.CPU(device).EnableAlgorithms());
                Accelerator accelerator = context.CreateCPUAccelerator(0);
                return new ComputeContext(kind, context, accelerator, "ilgpu-cpu " + accelerator.Name);
            }
            case DeviceKind.Cuda:
                return CreateCuda(new CudaDriverProbe());
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    /// <summary>
    /// The first CUDA GPU, with the driver found where it usually lives (<see cref="IlgpuCudaImport"/>), PTX JIT logs
    /// kept for errors (<see cref="PtxJitLog"/>) and its own stream (<see cref="DeviceStreams"/>). When ILGPU lists no
    /// device, <paramref name="probe"/> finds out why and the ModelException says so.
    /// </summary>
    internal static ComputeContext CreateCuda(ICudaProbe probe)
    {
        IlgpuCudaImport.Install();
        PtxJitLog.Install();
        Context context = Context.Create(b => b.Cuda().EnableAlgorithms());
        if (context.GetCudaDevices().Count == 0)
        {
            context.Dispose();
            throw new ModelException(CudaDiscovery.WhyNoDevice(probe));
        }
        CudaAccelerator accelerator = context.CreateCudaAccelerator(0);
        DeviceStreams.UseOwnStream(accelerator);
        return new ComputeContext(DeviceKind.Cuda, context, accelerator, accelerator.Name);
    }

    /// <summary>A zero-filled float32 tensor.</summary>
    public DeviceTensor Allocate(params int[] shape) => AllocateStorage(shape, isInt: false, zero: true);

    /// <summary>A zero-filled int32 tensor.</summary>
    public DeviceTensor AllocateInt(params int[] shape) => AllocateStorage(shape, isInt: true, zero: true);

    public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape)
    {
        if (data.Length != DeviceTensor.ElementCount(shape))
            throw new ArgumentException($"data has {data.Length} elements, shape {DeviceTensor.Format(shape)} holds {DeviceTensor.ElementCount(shape)}");
        DeviceTensor tensor = AllocateStorage(shape, isInt: false, zero: false);
        if (IsCpu) data.CopyTo(tensor.Span);
        else tensor.View.CopyFromCPU(data);
        Transfers.Count(TransferDirection.HostToDevice, 4L * data.Length, tensor);
        return tensor;
    }

    public DeviceTensor UploadInt(ReadOnlySpan<int> data, params int[] shape)
    {
        if (data.Length != DeviceTensor.ElementCount(shape))
            throw new ArgumentException($"data has {data.Length} elements, shape {DeviceTensor.Format(shape)} holds {DeviceTensor.ElementCount(shape)}");
        DeviceTensor tensor = AllocateStorage(shape, isInt: true, zero: false);
        if (IsCpu) data.CopyTo(tensor.IntSpan);
        else tensor.IntView.CopyFromCPU(data);
        Transfers.Count(TransferDirection.HostToDevice, 4L * data.Length, tensor);
        return tensor;
    }

    /// <summary>
    /// A bf16 weight tensor over the given 16-bit patterns, without copying them (cpu device only): the CPU GEMM reads
    /// it as its weight operand at half the bytes of f32. The memory must outlive the tensor.
    /// </summary>
    public DeviceTensor WrapBf16(ReadOnlyMemory<ushort> bits, params int[] shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsCpu)
            throw new InvalidOperationException($"bf16 weight tensors exist on the cpu device only, this context is {Kind.Name()}");
        if (bits.Length != DeviceTensor.ElementCount(shape))
            throw new ArgumentException($"data has {bits.Length} elements, shape {DeviceTensor.Format(shape)} holds {DeviceTensor.ElementCount(shape)}");
        return new DeviceTensor(new DeviceStorage(bits), Kind, 0, (int[])shape.Clone(), isInt: false, owner: true);
    }

    /// <summary>
    /// A bf16 weight tensor holding a copy of the given 16-bit patterns, on any device: a managed array on the cpu
    /// device, a 16-bit ILGPU buffer otherwise. <see cref="Gemm{TEpilogue}"/> and <see cref="CpuGemm.Run"/> read it as
    /// their weight operand.
    /// </summary>
    public DeviceTensor UploadBf16(ReadOnlySpan<ushort> bits, params int[] shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsCpu)
        {
            var copy = WrapBf16(bits.ToArray(), shape);
            Transfers.Count(TransferDirection.HostToDevice, 2L * bits.Length, copy);
            return copy;
        }
        int length = DeviceTensor.ElementCount(shape);
        if (bits.Length != length)
            throw new ArgumentException($"data has {bits.Length} elements, shape {DeviceTensor.Format(shape)} holds {length}");
        Interlocked.Increment(ref _allocations);
        var buffer = Accelerator.Allocate1D<ushort>(Math.Max(length, 1));
        ArrayView<ushort> view = buffer.View.AsContiguous().SubView(0, length);
        view.CopyFromCPU(bits);
        var tensor = new DeviceTensor(new DeviceStorage(buffer, length), Kind, 0, (int[])shape.Clone(), isInt: false, owner: true);
        Transfers.Count(TransferDirection.HostToDevice, 2L * length, tensor);
        return tensor;
    }

    /// <summary>Copies a host span into an existing float tensor (or view) of the same length.</summary>
    public void CopyFrom(ReadOnlySpan<float> data, DeviceTensor destination)
    {
        CheckLength(data.Length, destination);
        if (IsCpu) data.CopyTo(destination.Span);
        else destination.View.CopyFromCPU(data);
        Transfers.Count(TransferDirection.HostToDevice, 4L * data.Length, destination);
    }

    /// <summary>Copies a host span into an existing int32 tensor (or view) of the same length.</summary>
    public void CopyFrom(ReadOnlySpan<int> data, DeviceTensor destination)
    {
        CheckLength(data.Length, destination);
        if (IsCpu) data.CopyTo(destination.IntSpan);
        else destination.IntView.CopyFromCPU(data);
        Transfers.Count(TransferDirection.HostToDevice, 4L * data.Length, destination);
    }

    /// <summary>Copies one tensor (or view) into another of the same length on this device; bits are copied as is.</summary>
    public void Copy(DeviceTensor source, DeviceTensor destination)
    {
        if (source.Length != destination.Length)
            throw new ArgumentException($"cannot copy {source} into {destination}: lengths differ");
        if (IsCpu) source.AsFloat().Span.CopyTo(destination.AsFloat().Span);
        else source.AsFloat().View.CopyTo(destination.AsFloat().View);
    }

    /// <summary>Sets every element of a tensor (or view) to zero.</summary>
    public void Clear(DeviceTensor t)
    {
        if (IsCpu) t.AsFloat().Span.Clear();
        else t.AsFloat().View.MemSetToZero();
    }

    public float[] Download(DeviceTensor t)
    {
        var result = new float[t.Length];
        if (IsCpu) t.Span.CopyTo(result);
        else
        {
            Synchronize();
            t.View.CopyToCPU(result);
        }
        Transfers.Count(TransferDirection.DeviceToHost, 4L * result.Length, t);
        return result;
    }

    public int[] DownloadInt(DeviceTensor t)
    {
        var result = new int[t.Length];
        if (IsCpu) t.IntSpan.CopyTo(result);
        else
        {
            Synchronize();
            t.IntView.CopyToCPU(result);
        }
        Transfers.Count(TransferDirection.DeviceToHost, 4L * result.Length, t);
        return result;
    }

    /// <summary>Waits for every queued kernel and copy (no-op on the cpu device, which runs synchronously).</summary>
    public void Synchronize() => _accelerator?.Synchronize();

    /// <summary>Loads a kernel once per (name, specialization type) and returns the cached launcher.</summary>
    internal TDelegate CachedKernel<TDelegate>(string name, Type specialization, Func<Accelerator, TDelegate> load)
        where TDelegate : Delegate
    {
        lock (_kernels)
        {
            if (!_kernels.TryGetValue((name, specialization), out Delegate? kernel))
            {
                try
                {
                    kernel = load(Accelerator);
                }
                catch (CudaException e)
                {
                    throw new KernelLoadException(name, e); // with the driver's JIT log, which ILGPU only traces
                }
                _kernels[(name, specialization)] = kernel;
            }
            return (TDelegate)kernel;
        }
    }

    /// <summary>Holds objects as long as this context (ILGPU caches precompiled kernels only weakly).</summary>
    internal void KeepAlive(object value) => _keptAlive.Add(value);

    private DeviceTensor AllocateStorage(int[] shape, bool isInt, bool zero)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Interlocked.Increment(ref _allocations);
        int length = DeviceTensor.ElementCount(shape);
        DeviceStorage storage;
        if (IsCpu)
        {
            storage = new DeviceStorage(new float[length]);
        }
        else
        {
            // ILGPU refuses empty buffers; one spare element keeps empty tensors legal.
            var buffer = Accelerator.Allocate1D<float>(Math.Max(length, 1));
            if (zero) buffer.MemSetToZero();
            storage = new DeviceStorage(buffer, length);
        }
        return new DeviceTensor(storage, Kind, 0, (int[])shape.Clone(), isInt, owner: true);
    }

    private static void CheckLength(int dataLength, DeviceTensor tensor)
    {
        if (dataLength != tensor.Length)
            throw new ArgumentException($"data has {dataLength} elements, tensor {tensor} holds {tensor.Length}");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _scratch?.Dispose();
        _disposed = true;
        _cublas?.Dispose();
        _accelerator?.Dispose();
        _context?.Dispose();
    }
}
