using System.Text.Json;

namespace Qwen2VL.Runtime;

/// <summary>
/// Parses and validates the JSON header of a safetensors file:
/// <c>{"__metadata__": {..}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..}</c>.
/// Every error names the file and the tensor, so a corrupt checkpoint is diagnosed without a debugger.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>The reference implementation refuses headers above 100 MB; so do we.</summary>
    public const long MaxHeaderLength = 100L * 1024 * 1024;

    public static (Dictionary<string, TensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(
        ReadOnlySpan<byte> headerBytes, long dataLength, string file)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes.ToArray(), StrictJson.DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new SafetensorsException($"{file}: header is not valid JSON (line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1})", e);
        }
        using (document)
        {
            try { StrictJson.Validate(document, file); }
            catch (ModelException e) { throw new SafetensorsException(e.Message, e); }
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new SafetensorsException($"{file}: header is a JSON {Describe(root.ValueKind)}, expected an object");

            var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty property in root.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                    ReadMetadata(property.Value, metadata, file);
                else if (!tensors.TryAdd(property.Name, ReadTensor(property.Name, property.Value, dataLength, file)))
                    throw new SafetensorsException($"{file}: tensor '{property.Name}' appears twice in the header");
            }
            CheckNoOverlap(tensors.Values, file);
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string file)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafetensorsException($"{file}: __metadata__ is a JSON {Describe(value.ValueKind)}, expected an object of strings");
        foreach (JsonProperty entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new SafetensorsException($"{file}: __metadata__ entry '{entry.Name}' is a JSON {Describe(entry.Value.ValueKind)}, expected a string");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static TensorInfo ReadTensor(string name, JsonElement value, long dataLength, string file)
    {
        string context = $"{file}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafetensorsException($"{context} is a JSON {Describe(value.ValueKind)}, expected an object with dtype, shape and data_offsets");

        if (!value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new SafetensorsException($"{context} has no string 'dtype'");
        SafetensorsDType dtype = SafetensorsDTypes.Parse(dtypeElement.GetString()!, context);

        long[] shape = ReadNonNegativeArray(value, "shape", context, expectedCount: null);
        long[] offsets = ReadNonNegativeArray(value, "data_offsets", context, expectedCount: 2);
        long begin = offsets[0], end = offsets[1];
        if (begin > end)
            throw new SafetensorsException($"{context} data_offsets [{begin}, {end}] begin after end");
        if (end > dataLength)
            throw new SafetensorsException($"{context} data_offsets [{begin}, {end}] run past the data section ({dataLength} bytes)");

        // Every tensor this program uses is indexed with ints; a larger dimension (even of an empty tensor) is refused
        // here rather than overflowing a cast later.
        if (shape.Any(d => d > int.MaxValue))
            throw new SafetensorsException($"{context} shape {SafetensorsDTypes.FormatShape(shape)} has a dimension above {int.MaxValue}");
        long expectedBytes = dtype.ElementSize();
        foreach (long d in shape)
        {
            // Checked: a hostile header could overflow the product and pass the size test.
            try { expectedBytes = checked(expectedBytes * d); }
            catch (OverflowException) { throw new SafetensorsException($"{context} shape {SafetensorsDTypes.FormatShape(shape)} is too large"); }
        }
        if (end - begin != expectedBytes)
            throw new SafetensorsException(
                $"{context} data_offsets [{begin}, {end}] do not match shape {SafetensorsDTypes.FormatShape(shape)} of {dtype.Name()} ({expectedBytes} bytes)");
        return new TensorInfo(name, dtype, shape, begin, end - begin);
    }

    private static long[] ReadNonNegativeArray(JsonElement tensor, string key, string context, int? expectedCount)
    {
        if (!tensor.TryGetProperty(key, out JsonElement array) || array.ValueKind != JsonValueKind.Array)
            throw new SafetensorsException($"{context} has no array '{key}'");
        var values = new List<long>();
        foreach (JsonElement item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw new SafetensorsException($"{context} '{key}' holds {item.GetRawText()}, expected non-negative integers");
            values.Add(v);
        }
        if (expectedCount is int count && values.Count != count)
            throw new SafetensorsException($"{context} '{key}' has {values.Count} entries, expected {count}");
        return values.ToArray();
    }

    private static void CheckNoOverlap(IEnumerable<TensorInfo> tensors, string file)
    {
        // Empty tensors occupy no bytes and cannot overlap anything.
        TensorInfo[] sorted = tensors.Where(t => t.Length > 0).OrderBy(t => t.Offset).ToArray();
        for (int i = 1; i < sorted.Length; i++)
        {
            TensorInfo previous = sorted[i - 1], current = sorted[i];
            if (current.Offset < previous.Offset + previous.Length)
                throw new SafetensorsException(
                    $"{file}: tensor '{current.Name}' data_offsets [{current.Offset}, {current.Offset + current.Length}] overlap tensor '{previous.Name}' [{previous.Offset}, {previous.Offset + previous.Length}]");
        }
    }

    private static string Describe(JsonValueKind kind) => kind.ToString().ToLowerInvariant();

    /// <summary>Up to <paramref name="count"/> names closest to <paramref name="name"/>, for "did you mean" messages.</summary>
    public static string CloseNames(string name, IEnumerable<string> candidates, int count = 3)
    {
        string[] closest = candidates
            .OrderBy(c => EditDistance(name, c))
            .ThenBy(c => c, StringComparer.Ordinal)
            .Take(count)
            .ToArray();
        return closest.Length == 0 ? "the file holds no tensors" : "close names: " + string.Join(", ", closest.Select(c => $"'{c}'"));
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
