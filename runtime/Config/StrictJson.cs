using System.Text.Json;

namespace Qwen2VL.Runtime;

/// <summary>
/// The one policy for every JSON file this program reads (config.json, safetensors headers, index files, trainer
/// state, optimizer layout, preprocessor config, tokenizer.json, training data): what Python's <c>json</c> module —
/// and so transformers — accepts, and nothing it rejects. No trailing commas, no comments, nesting at most
/// <see cref="MaxDepth"/>, strings and names valid UTF-8, and no key twice in one object (Python silently keeps the
/// last one, System.Text.Json the first: two readers would see two different configs, so a duplicate is an error).
/// Everything is checked once, up front, so no later <c>GetString</c> can throw.
/// </summary>
public static class StrictJson
{
    public const int MaxDepth = 64;

    public static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = MaxDepth,
    };

    /// <summary>Parses and validates; the caller disposes the document. Errors name <paramref name="source"/>.</summary>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new ModelException($"{source}: invalid JSON at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}", e);
        }
        try
        {
            Validate(document, source);
            return document;
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    public static JsonDocument Parse(string text, string source) => Parse(System.Text.Encoding.UTF8.GetBytes(text), source);

    /// <summary>Reads a JSON file (a regular file, at most <paramref name="maxBytes"/>) under the policy.</summary>
    public static JsonDocument ReadFile(string path, string label, long maxBytes = InputFile.DefaultMaxTextBytes) =>
        Parse(InputFile.ReadAllBytes(path, label, maxBytes), label);

    /// <summary>The checks after parsing: no duplicate keys, every string and name valid UTF-8.</summary>
    public static void Validate(JsonDocument document, string source) => Validate(document.RootElement, source, "");

    private static void Validate(JsonElement element, string source, string where)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                HashSet<string>? seen = null;
                foreach (var property in element.EnumerateObject())
                {
                    string name = Text(() => property.Name, source, where);
                    seen ??= new HashSet<string>(StringComparer.Ordinal);
                    if (!seen.Add(name))
                        throw new ModelException($"{source}: key '{Short(name)}' appears twice in {(where.Length == 0 ? "the top-level object" : $"'{where}'")}");
                    Validate(property.Value, source, where.Length == 0 ? name : where + "." + name);
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray()) Validate(item, source, $"{where}[{i++}]");
                break;
            case JsonValueKind.String:
                Text(element.GetString, source, where);
                break;
        }
    }

    private static string Text(Func<string?> read, string source, string where)
    {
        try
        {
            return read() ?? "";
        }
        catch (InvalidOperationException e)
        {
            throw new ModelException($"{source}: invalid UTF-8 in a string{(where.Length == 0 ? "" : $" at '{Short(where)}'")}", e);
        }
    }

    private static string Short(string s) => s.Length > 60 ? s[..57] + "..." : s;
}
