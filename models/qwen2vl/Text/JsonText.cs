using System.Text.Encodings.Web;
using System.Text.Json;

namespace Qwen2VL.Model.Text;

/// <summary>Quotes a string for an error message as JSON would, but keeps non-ASCII and '&lt;' readable.</summary>
internal static class JsonText
{
    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Quote(string? s) => JsonSerializer.Serialize(s, Relaxed);
}
