using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>
/// A safetensors file mapped read-only into memory: 8-byte little-endian header length N, N bytes of JSON
/// header, then the data section. The whole header is validated on open; tensor bytes are read from the
/// mapping on demand, so opening a multi-gigabyte checkpoint costs no copy.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _mapping;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly string _fileName;
    private bool _disposed;

    public string Path { get; }
    public IReadOnlyDictionary<string, TensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafetensorsFile(string path, MemoryMappedFile mapping, MemoryMappedViewAccessor view, byte* pointer,
        long dataStart, Dictionary<string, TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _fileName = System.IO.Path.GetFileName(path);
        _mapping = mapping;
        _view = view;
        _base = pointer;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    public static SafetensorsFile Open(string path)
    {
        string file = System.IO.Path.GetFileName(path);
        try { InputFile.RequireRegular(path, file); }
        catch (ModelException e) when (e is not SafetensorsException) { throw new SafetensorsException(e.Message, e); }

        MemoryMappedFile? mapping = null;
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            long fileLength;
            try
            {
                // The size comes from the opened handle: through a symbolic link (a Hugging Face cache snapshot
                // links into blobs/) FileInfo.Length would be the link's own length.
                var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
                fileLength = stream.Length;
                if (fileLength < 8)
                {
                    stream.Dispose();
                    throw new SafetensorsException($"{file}: file is {fileLength} bytes, too short for the 8-byte header length");
                }
                mapping = MemoryMappedFile.CreateFromFile(stream, mapName: null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new SafetensorsException($"{file}: cannot open ({e.Message})", e);
            }
            view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            pointer += view.PointerOffset;

            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(pointer, 8));
            if (headerLength > SafetensorsHeader.MaxHeaderLength)
                throw new SafetensorsException($"{file}: header length {headerLength} is larger than the 100 MB limit (file is corrupt or not safetensors)");
            if (8 + (long)headerLength > fileLength)
                throw new SafetensorsException($"{file}: header length {headerLength} runs past the end of the file ({fileLength} bytes; truncated?)");

            long dataStart = 8 + (long)headerLength;
            var (tensors, metadata) = SafetensorsHeader.Parse(
                new ReadOnlySpan<byte>(pointer + 8, (int)headerLength), fileLength - dataStart, file);
            return new SafetensorsFile(path, mapping, view, pointer, dataStart, tensors, metadata);
        }
        catch
        {
            if (pointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            mapping?.Dispose();
            throw;
        }
    }

    public TensorInfo Info(string name)
    {
        if (Tensors.TryGetValue(name, out TensorInfo? info)) return info;
        throw new SafetensorsException($"{_fileName}: no tensor '{name}'; {SafetensorsHeader.CloseNames(name, Tensors.Keys)}");
    }

    /// <summary>The raw little-endian bytes of a tensor, pointing into the mapping (valid until Dispose).</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        TensorInfo info = Info(name);
        if (info.Length > int.MaxValue)
            throw new SafetensorsException($"{_fileName}: tensor '{name}' is {info.Length} bytes, larger than one span can hold");
        return new ReadOnlySpan<byte>(_base + _dataStart + info.Offset, (int)info.Length);
    }

    public byte[] ReadBytes(string name) => GetBytes(name).ToArray();

    /// <summary>Reads any numeric tensor as float32 (BF16/F16 widen exactly; integers convert).</summary>
    public float[] ReadFloat32(string name)
    {
        var result = new float[CheckedCount(name)];
        ReadFloat32(name, result);
        return result;
    }

    public void ReadFloat32(string name, Span<float> destination)
    {
        TensorInfo info = Info(name);
        if (destination.Length != info.ElementCount)
            throw new SafetensorsException($"{_fileName}: tensor '{name}' has {info.ElementCount} elements, destination holds {destination.Length}");
        SafetensorsConvert.ToFloat32(info.DType, GetBytes(name), destination);
    }

    /// <summary>
    /// A BF16 tensor's bit patterns in place, without widening or copying (valid until Dispose). A tensor whose data
    /// does not start on a 2-byte boundary (legal in safetensors, never written by torch) is copied instead.
    /// </summary>
    public ReadOnlyMemory<ushort> MapBf16(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        TensorInfo info = Info(name);
        if (info.DType != SafetensorsDType.BF16)
            throw new SafetensorsException($"{_fileName}: tensor '{name}' is {SafetensorsDTypes.Name(info.DType)}, not BF16");
        int count = CheckedCount(name);
        byte* start = _base + _dataStart + info.Offset;
        if (((nint)start & 1) == 0) return new MappedBf16Memory(this, (ushort*)start, count).Memory;
        return MemoryMarshal.Cast<byte, ushort>(GetBytes(name)).ToArray();
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Reads an integer tensor (I64, I32, U8) as int64.</summary>
    public long[] ReadInt64(string name)
    {
        TensorInfo info = Info(name);
        var result = new long[CheckedCount(name)];
        ReadOnlySpan<byte> bytes = GetBytes(name);
        switch (info.DType)
        {
            case SafetensorsDType.I64: bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan())); break;
            case SafetensorsDType.I32:
                ReadOnlySpan<int> ints = MemoryMarshal.Cast<byte, int>(bytes);
                for (int i = 0; i < result.Length; i++) result[i] = ints[i];
                break;
            case SafetensorsDType.U8:
                for (int i = 0; i < result.Length; i++) result[i] = bytes[i];
                break;
            default:
                throw new SafetensorsException($"{_fileName}: tensor '{name}' is {info.DType.Name()}, expected an integer dtype (I64, I32, U8)");
        }
        return result;
    }

    private int CheckedCount(string name)
    {
        long count = Info(name).ElementCount;
        if (count > Array.MaxLength)
            throw new SafetensorsException($"{_fileName}: tensor '{name}' has {count} elements, more than one array can hold");
        return (int)count;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mapping.Dispose();
    }
}
