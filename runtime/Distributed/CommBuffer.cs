using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime.Distributed;

/// <summary>Element types the collectives move. Sums of 16-bit types accumulate in float32 and round once.</summary>
public enum CommDType
{
    /// <summary>IEEE float32.</summary>
    F32,
    /// <summary>IEEE float64 (scalars such as partial norms).</summary>
    F64,
    /// <summary>bfloat16 bits in a ushort (the upper half of a float32).</summary>
    BF16,
    /// <summary>IEEE binary16 bits in a ushort.</summary>
    F16,
}

/// <summary>
/// Memory a collective reads or writes: a managed array (float[] for F32, double[] for F64, ushort[] for the 16-bit
/// types), native host memory (an ILGPU CPU-accelerator buffer, pinned memory) or CUDA device memory. Host backends
/// (threads, MPI) take the first two; NCCL takes device memory. A buffer is a description, not an owner: the memory
/// must stay alive and unmoved by anyone else for the duration of the call.
/// </summary>
public readonly struct CommBuffer
{
    private readonly Array? _array;
    private readonly int _offset;
    private readonly nint _pointer;

    public CommDType DType { get; }
    public int Count { get; }

    /// <summary>True for CUDA device memory (NCCL's kind), false for host memory.</summary>
    public bool OnDevice { get; }

    private CommBuffer(Array? array, int offset, nint pointer, bool onDevice, int count, CommDType dtype)
    {
        _array = array; _offset = offset; _pointer = pointer; OnDevice = onDevice; Count = count; DType = dtype;
    }

    public static CommBuffer Of(float[] array) => Of(array, 0, array.Length);
    public static CommBuffer Of(double[] array) => Of(array, 0, array.Length);

    public static CommBuffer Of(float[] array, int offset, int count) => Managed(array, offset, count, CommDType.F32);
    public static CommBuffer Of(double[] array, int offset, int count) => Managed(array, offset, count, CommDType.F64);

    /// <summary>16-bit values (<paramref name="dtype"/> BF16 or F16) held as their bits.</summary>
    public static CommBuffer Of(ushort[] array, CommDType dtype) => Of(array, 0, array.Length, dtype);

    public static CommBuffer Of(ushort[] array, int offset, int count, CommDType dtype)
    {
        if (dtype is not (CommDType.BF16 or CommDType.F16))
            throw new ArgumentException($"a ushort[] buffer holds BF16 or F16 bits, not {dtype}");
        return Managed(array, offset, count, dtype);
    }

    /// <summary>Native memory: host (pinned, or an ILGPU CPU-accelerator buffer) or, with <paramref name="onDevice"/>, CUDA.</summary>
    public static CommBuffer OfPointer(nint pointer, int count, CommDType dtype, bool onDevice)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count));
        if (pointer == 0 && count > 0) throw new ArgumentException("a null pointer cannot hold elements");
        return new CommBuffer(null, 0, pointer, onDevice, count, dtype);
    }

    private static CommBuffer Managed(Array array, int offset, int count, CommDType dtype)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (offset < 0 || count < 0 || (long)offset + count > array.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {(long)offset + count}) is outside an array of {array.Length}");
        return new CommBuffer(array, offset, 0, false, count, dtype);
    }

    public static int SizeOf(CommDType dtype) => dtype switch
    {
        CommDType.F32 => 4,
        CommDType.F64 => 8,
        CommDType.BF16 or CommDType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public int ElementSize => SizeOf(DType);
    public long ByteCount => (long)Count * ElementSize;

    /// <summary><paramref name="count"/> elements starting <paramref name="start"/> elements in.</summary>
    public CommBuffer Slice(int start, int count)
    {
        if (start < 0 || count < 0 || (long)start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}, {(long)start + count}) of a buffer of {Count}");
        return _array is not null
            ? new CommBuffer(_array, _offset + start, 0, false, count, DType)
            : new CommBuffer(null, 0, _pointer + (nint)((long)start * ElementSize), OnDevice, count, DType);
    }

    /// <summary>Host memory as bytes (throws for device memory).</summary>
    public unsafe Span<byte> Bytes
    {
        get
        {
            if (OnDevice) throw new CommException("this collective backend works on host memory; the buffer is CUDA device memory (stage it through the host or use --comm nccl)");
            return _array switch
            {
                float[] f => MemoryMarshal.AsBytes(f.AsSpan(_offset, Count)),
                double[] d => MemoryMarshal.AsBytes(d.AsSpan(_offset, Count)),
                ushort[] u => MemoryMarshal.AsBytes(u.AsSpan(_offset, Count)),
                null => new Span<byte>((void*)_pointer, checked((int)ByteCount)),
                _ => throw new InvalidOperationException($"unsupported array {_array.GetType()}"),
            };
        }
    }

    /// <summary>Host memory as elements of <typeparamref name="T"/> (float, double or ushort, matching the dtype's size).</summary>
    public Span<T> Elements<T>() where T : unmanaged => MemoryMarshal.Cast<byte, T>(Bytes);

    /// <summary>CUDA device address (throws for host memory).</summary>
    public nint DevicePointer => OnDevice ? _pointer : throw new CommException("NCCL needs CUDA device memory; the buffer is in host memory");

    /// <summary>True when both describe the same first element (in-place use).</summary>
    public bool SameStart(CommBuffer other) =>
        _array is not null ? ReferenceEquals(_array, other._array) && _offset == other._offset : _pointer == other._pointer && _pointer != 0;

    public override string ToString() => $"{DType}[{Count}] in {(OnDevice ? "device" : "host")} memory";
}
