using System.Runtime.InteropServices;
using System.Text.Json;

namespace Qwen2VL.Runtime;

/// <summary>One tensor to write: raw little-endian bytes plus dtype and shape.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, byte[] Data)
{
    public static SafetensorsEntry F32(string name, float[] data, params long[] shape) =>
        new(name, SafetensorsDType.F32, shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    public static SafetensorsEntry I64(string name, long[] data, params long[] shape) =>
        new(name, SafetensorsDType.I64, shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    public static SafetensorsEntry I32(string name, int[] data, params long[] shape) =>
        new(name, SafetensorsDType.I32, shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    public static SafetensorsEntry U8(string name, byte[] data, params long[] shape) =>
        new(name, SafetensorsDType.U8, shape, (byte[])data.Clone());

    /// <summary>bfloat16 from float32 by round-to-nearest-even of the dropped 16 bits (NaN kept quiet).</summary>
    public static SafetensorsEntry BF16(string name, float[] data, params long[] shape)
    {
        var bits = new ushort[data.Length];
        for (int i = 0; i < data.Length; i++)
        {
            uint u = BitConverter.SingleToUInt32Bits(data[i]);
            bits[i] = float.IsNaN(data[i])
                ? (ushort)((u >> 16) | 0x40)
                : (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
        }
        return new(name, SafetensorsDType.BF16, shape, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());
    }

    public static SafetensorsEntry F16(string name, float[] data, params long[] shape)
    {
        var halves = new Half[data.Length];
        for (int i = 0; i < data.Length; i++) halves[i] = (Half)data[i];
        return new(name, SafetensorsDType.F16, shape, MemoryMarshal.AsBytes(halves.AsSpan()).ToArray());
    }
}

/// <summary>
/// Writes safetensors files atomically: everything goes to a temporary file beside the target, which
/// replaces the target only once complete, so a crash never leaves a half-written checkpoint.
/// </summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyList<SafetensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        string file = Path.GetFileName(path);
        byte[] header = BuildHeader(tensors, metadata, file);
        string temp = AtomicFile.TempPathFor(path); // also removes the temp files of killed writers
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Span<byte> length = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (SafetensorsEntry entry in tensors) stream.Write(entry.Data);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } // best effort: the original error matters more
            throw;
        }
    }

    private static byte[] BuildHeader(IReadOnlyList<SafetensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata, string file)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            long offset = 0;
            foreach (SafetensorsEntry entry in tensors)
            {
                Validate(entry, seen, file);
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", entry.DType.Name());
                json.WriteStartArray("shape");
                foreach (long d in entry.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + entry.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += entry.Data.Length;
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-byte aligned (8 + header length is a multiple of 8).
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static void Validate(SafetensorsEntry entry, HashSet<string> seen, string file)
    {
        if (entry.Name == "__metadata__" || !seen.Add(entry.Name))
            throw new SafetensorsException($"{file}: tensor name '{entry.Name}' is reserved or used twice");
        long expected = entry.DType.ElementSize();
        foreach (long d in entry.Shape)
        {
            if (d < 0) throw new SafetensorsException($"{file}: tensor '{entry.Name}' has negative dimension in shape {SafetensorsDTypes.FormatShape(entry.Shape)}");
            expected *= d;
        }
        if (expected != entry.Data.Length)
            throw new SafetensorsException(
                $"{file}: tensor '{entry.Name}' has {entry.Data.Length} bytes, shape {SafetensorsDTypes.FormatShape(entry.Shape)} of {entry.DType.Name()} needs {expected}");
    }
}
