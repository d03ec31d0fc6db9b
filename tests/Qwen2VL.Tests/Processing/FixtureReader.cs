using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Qwen2VL.Tests.Processing;

/// <summary>
/// Minimal test-only safetensors reader (F32 / I64 / U8, little-endian) for the fixture files, until the
/// runtime's <c>Qwen2VL.Runtime.SafetensorsFile</c> lands; it should then replace this class.
/// Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then data.
/// </summary>
sealed class FixtureReader
{
    readonly byte[] _bytes;
    readonly long _dataStart;
    readonly Dictionary<string, (string DType, long[] Shape, long Begin, long End)> _entries = new();

    public FixtureReader(string path)
    {
        _bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(_bytes);
        _dataStart = 8 + headerLength;
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(_bytes, 8, (int)headerLength));
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            _entries[p.Name] = (p.Value.GetProperty("dtype").GetString()!, shape, offsets[0], offsets[1]);
        }
    }

    public static string CaseFile(string caseName, string file) =>
        Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "cases", caseName, file);

    public bool Contains(string name) => _entries.ContainsKey(name);

    public long[] Shape(string name) => _entries[name].Shape;

    public byte[] U8(string name) => Span(name, "U8").ToArray();

    public float[] F32(string name)
    {
        var raw = Span(name, "F32");
        var values = new float[raw.Length / 4];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(4 * i));
        return values;
    }

    public long[] I64(string name)
    {
        var raw = Span(name, "I64");
        var values = new long[raw.Length / 8];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadInt64LittleEndian(raw.Slice(8 * i));
        return values;
    }

    ReadOnlySpan<byte> Span(string name, string dtype)
    {
        if (!_entries.TryGetValue(name, out var e))
            throw new KeyNotFoundException($"tensor '{name}' not in fixture");
        if (e.DType != dtype)
            throw new InvalidOperationException($"tensor '{name}' is {e.DType}, not {dtype}");
        return _bytes.AsSpan((int)(_dataStart + e.Begin), (int)(e.End - e.Begin));
    }
}
