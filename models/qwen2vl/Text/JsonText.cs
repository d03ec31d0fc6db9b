using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Qwen2VL.Model.Text;

/// <summary>Quotes a string for an error message as JSON would, but keeps non-ASCII and '&lt;' readable.</summary>
internal static class JsonText
{
    private static readonly JsonWriterOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Written with <see cref="Utf8JsonWriter"/> rather than <c>JsonSerializer</c>, whose reflection-based path is
    /// disabled in the trimmed bundle.
    /// </summary>
    public static string Quote(string? s)
    {
        if (s is null) return "null";
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, Relaxed))
            writer.WriteStringValue(s);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
