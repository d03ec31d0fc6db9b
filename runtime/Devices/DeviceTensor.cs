using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

/// <summary>
/// The memory behind one or more tensors: a managed array on the CPU path, an ILGPU buffer otherwise.
/// Elements are 4 bytes; float and int32 tensors are views of the same kind of storage, so the memory
/// planner can carve both out of one arena. The third form, bf16 weights on the CPU path, holds 16-bit patterns
/// (usually read in place from the checkpoint's mapping) that only the CPU GEMM reads.
/// </summary>
internal sealed class DeviceStorage : IDisposable
{
    public float[]? Host { get; }
    public ReadOnlyMemory<ushort> Bf16 { get; }
    public MemoryBuffer1D<ushort, Stride1D.Dense>? Bf16Buffer { get; }
    public bool IsBf16 { get; }
    public MemoryBuffer1D<float, Stride1D.Dense>? Buffer { get; }
    public int Length { get; }
    public bool Disposed { get; private set; }

    public DeviceStorage(float[] host) { Host = host; Length = host.Length; }

    public DeviceStorage(ReadOnlyMemory<ushort> bf16) { Bf16 = bf16; IsBf16 = true; Length = bf16.Length; }

    public DeviceStorage(MemoryBuffer1D<ushort, Stride1D.Dense> bf16Buffer, int length) { Bf16Buffer = bf16Buffer; IsBf16 = true; Length = length; }

    public DeviceStorage(MemoryBuffer1D<float, Stride1D.Dense> buffer, int length) { Buffer = buffer; Length = length; }

    public void Dispose()
    {
        if (Disposed) return;
        Disposed = true;
        Buffer?.Dispose();
        Bf16Buffer?.Dispose();
    }
}

/// <summary>
/// A dense row-major tensor of float32 or int32 on one device, or of bfloat16 weights
/// (<see cref="IsBf16"/>: read only as a GEMM's weight operand, widened to f32 where the kernel reads them). A tensor made by the context owns its
/// storage; <see cref="Reshape"/>, <see cref="Slice"/>, <see cref="AsInt"/> and <see cref="AsFloat"/> make
/// views that share it and never free it. Disposing the owner frees the storage for all views.
/// </summary>
public sealed class DeviceTensor : IDisposable
{
    private readonly DeviceStorage _storage;
    private readonly int _offset;
    private readonly bool _owner;

    public int[] Shape { get; }
    public int Length { get; }
    public bool IsInt { get; }
    public DeviceKind Kind { get; }

    /// <summary>True for bf16 weights (<see cref="ComputeContext.WrapBf16"/>, <see cref="ComputeContext.UploadBf16"/>); Span/View/HostArray refuse them.</summary>
    public bool IsBf16 => _storage.IsBf16;

    /// <summary>The bf16 bit patterns of this tensor (cpu bf16 tensors only).</summary>
    internal ReadOnlyMemory<ushort> Bf16Memory
    {
        get
        {
            ObjectDisposedException.ThrowIf(_storage.Disposed, this);
            if (!IsBf16 || _storage.Bf16Buffer is not null) throw new InvalidOperationException($"tensor {this} is not a host bf16 tensor");
            return _storage.Bf16.Slice(_offset, Length);
        }
    }

    /// <summary>The bf16 bit patterns of this tensor on an ILGPU accelerator.</summary>
    internal ArrayView<ushort> Bf16View
    {
        get
        {
            ObjectDisposedException.ThrowIf(_storage.Disposed, this);
            if (_storage.Bf16Buffer is null) throw new InvalidOperationException($"tensor {this} is not a bf16 tensor on an accelerator");
            return _storage.Bf16Buffer.View.AsContiguous().SubView(_offset, Length);
        }
    }

    /// <summary>Element offset of this view in its storage (0 for owners).</summary>
    public int Offset => _offset;

    internal DeviceTensor(DeviceStorage storage, DeviceKind kind, int offset, int[] shape, bool isInt, bool owner)
    {
        _storage = storage;
        Kind = kind;
        _offset = offset;
        Shape = shape;
        Length = ElementCount(shape);
        IsInt = isInt;
        _owner = owner;
        if (offset < 0 || offset + Length > storage.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"view [{offset}, {offset + Length}) is outside storage of {storage.Length} elements");
    }

    /// <summary>The managed array behind a cpu tensor (elements start at <see cref="Offset"/>), for kernels that run in lambdas.</summary>
    internal float[] HostArray
    {
        get
        {
            ObjectDisposedException.ThrowIf(_storage.Disposed, this);
            ThrowIfBf16();
            return _storage.Host ?? throw new InvalidOperationException($"tensor {this} lives on an accelerator, not in host memory");
        }
    }

    /// <summary>The address of the first element in an accelerator buffer (CUDA device memory, or host memory on ILGPU's CPU accelerator), for collectives.</summary>
    internal nint NativeAddress
    {
        get
        {
            ObjectDisposedException.ThrowIf(_storage.Disposed, this);
            var buffer = _storage.Buffer ?? throw new InvalidOperationException($"tensor {this} lives in a managed array, not an accelerator buffer");
            return buffer.NativePtr + (nint)_offset * sizeof(float);
        }
    }

    /// <summary>Float elements on the CPU path.</summary>
    public Span<float> Span
    {
        get
        {
            CheckType(wantInt: false);
            return HostSpan();
        }
    }

    /// <summary>Int32 elements on the CPU path.</summary>
    public Span<int> IntSpan
    {
        get
        {
            CheckType(wantInt: true);
            return MemoryMarshal.Cast<float, int>(HostSpan());
        }
    }

    /// <summary>Float elements on an ILGPU accelerator.</summary>
    public ArrayView<float> View
    {
        get
        {
            CheckType(wantInt: false);
            return DeviceView();
        }
    }

    /// <summary>Int32 elements on an ILGPU accelerator.</summary>
    public ArrayView<int> IntView
    {
        get
        {
            CheckType(wantInt: true);
            return DeviceView().Cast<int>();
        }
    }

    /// <summary>The same elements with another shape of the same element count.</summary>
    public DeviceTensor Reshape(params int[] shape)
    {
        if (ElementCount(shape) != Length)
            throw new ArgumentException($"cannot reshape {Format(Shape)} ({Length} elements) to {Format(shape)}");
        return new DeviceTensor(_storage, Kind, _offset, (int[])shape.Clone(), IsInt, owner: false);
    }

    /// <summary>A view of <paramref name="length"/> elements starting <paramref name="offset"/> elements into this tensor.</summary>
    public DeviceTensor Slice(int offset, int length, params int[] shape)
    {
        if (offset < 0 || length < 0 || (long)offset + length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {(long)offset + length}) is outside a tensor of {Length} elements");
        if (ElementCount(shape) != length)
            throw new ArgumentException($"slice of {length} elements cannot have shape {Format(shape)}");
        return new DeviceTensor(_storage, Kind, _offset + offset, (int[])shape.Clone(), IsInt, owner: false);
    }

    /// <summary>The same 4-byte elements read as int32 (a view; bits are not converted).</summary>
    public DeviceTensor AsInt() => IsBf16 ? throw Bf16Refused() : new(_storage, Kind, _offset, (int[])Shape.Clone(), isInt: true, owner: false);

    /// <summary>The same 4-byte elements read as float32 (a view; bits are not converted).</summary>
    public DeviceTensor AsFloat() => IsBf16 ? throw Bf16Refused() : new(_storage, Kind, _offset, (int[])Shape.Clone(), isInt: false, owner: false);

    public void Dispose()
    {
        if (_owner) _storage.Dispose();
    }

    public override string ToString() => $"{(IsBf16 ? "bfloat16" : IsInt ? "int32" : "float32")}{Format(Shape)} on {Kind.Name()}";

    private void ThrowIfBf16()
    {
        if (IsBf16) throw Bf16Refused();
    }

    private InvalidOperationException Bf16Refused() =>
        new($"tensor {this} holds bf16 weights, which only a GEMM reads (as its weight operand)");

    private Span<float> HostSpan()
    {
        ObjectDisposedException.ThrowIf(_storage.Disposed, this);
        ThrowIfBf16();
        if (_storage.Host is null)
            throw new InvalidOperationException($"tensor {this} lives on an accelerator; use View/IntView (Span is for the cpu device)");
        return _storage.Host.AsSpan(_offset, Length);
    }

    private ArrayView<float> DeviceView()
    {
        ObjectDisposedException.ThrowIf(_storage.Disposed, this);
        ThrowIfBf16();
        if (_storage.Buffer is null)
            throw new InvalidOperationException($"tensor {this} lives in host memory; use Span/IntSpan (View is for ILGPU devices)");
        return _storage.Buffer.View.AsContiguous().SubView(_offset, Length);
    }

    private void CheckType(bool wantInt)
    {
        if (IsInt != wantInt)
            throw new InvalidOperationException($"tensor {this} is {(IsInt ? "int32" : "float32")}; use {(IsInt ? "IntSpan/IntView" : "Span/View")} or AsInt()/AsFloat()");
    }

    internal static int ElementCount(int[] shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape {Format(shape)}");
            count *= d;
            if (count > int.MaxValue) throw new ArgumentException($"shape {Format(shape)} has more than 2^31 elements");
        }
        return (int)count;
    }

    internal static string Format(int[] shape) => SafetensorsDTypes.FormatShape(shape);
}
