using System.Globalization;
using System.Text.Json;

namespace Qwen2VL.Runtime;

/// <summary>
/// A Hugging Face config.json, read by dotted key paths ("vision_config.embed_dim"). Every accessor that
/// fails names the file and the key, because a wrong config is the most common user error.
/// A JSON null counts as missing, since HF configs write <c>"sliding_window": null</c> for "not set".
/// </summary>
public sealed class ModelConfig
{
    private readonly string _source;

    public JsonElement Root { get; }

    private ModelConfig(JsonElement root, string source)
    {
        Root = root;
        _source = source;
    }

    public static ModelConfig Load(string path)
    {
        string name = Path.GetFileName(path);
        JsonDocument document;
        try { document = StrictJson.ReadFile(path, name); }
        catch (ModelException e) when (e is not ConfigException) { throw new ConfigException(e.Message, e); }
        using (document) return FromDocument(document, name);
    }

    /// <summary>Parses config text under the one JSON policy (<see cref="StrictJson"/>: no trailing commas, no duplicate keys).</summary>
    public static ModelConfig Parse(string json, string sourceName)
    {
        JsonDocument document;
        try { document = StrictJson.Parse(json, sourceName); }
        catch (ModelException e) when (e is not ConfigException) { throw new ConfigException(e.Message, e); }
        using (document) return FromDocument(document, sourceName);
    }

    private static ModelConfig FromDocument(JsonDocument document, string sourceName)
    {
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw new ConfigException($"{sourceName}: expected a JSON object at the top level, found {document.RootElement.ValueKind.ToString().ToLowerInvariant()}");
        return new ModelConfig(document.RootElement.Clone(), sourceName);
    }

    public bool Has(string dottedPath) => TryFind(dottedPath, out _);

    public int GetInt(string path) => AsInt(path, Require(path));

    public int GetInt(string path, int defaultValue) => TryFind(path, out JsonElement e) ? AsInt(path, e) : defaultValue;

    public double GetDouble(string path) => AsDouble(path, Require(path));

    public double GetDouble(string path, double defaultValue) => TryFind(path, out JsonElement e) ? AsDouble(path, e) : defaultValue;

    public string GetString(string path) => AsString(path, Require(path));

    public string GetString(string path, string defaultValue) => TryFind(path, out JsonElement e) ? AsString(path, e) : defaultValue;

    public bool GetBool(string path) => AsBool(path, Require(path));

    public bool GetBool(string path, bool defaultValue) => TryFind(path, out JsonElement e) ? AsBool(path, e) : defaultValue;

    public int[] GetIntArray(string path)
    {
        JsonElement e = Require(path);
        if (e.ValueKind != JsonValueKind.Array)
            throw Wrong(path, e, "an array of integers");
        return e.EnumerateArray().Select((item, i) => AsInt($"{path}[{i}]", item)).ToArray();
    }

    private JsonElement Require(string path) =>
        TryFind(path, out JsonElement e) ? e : throw new ConfigException($"{_source}: missing key '{path}'");

    private bool TryFind(string path, out JsonElement element)
    {
        element = Root;
        foreach (string segment in path.Split('.'))
        {
            if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty(segment, out JsonElement child))
                element = child;
            else if (element.ValueKind == JsonValueKind.Array
                     && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out int index)
                     && index < element.GetArrayLength())
                element = element[index];
            else
                return false;
        }
        return element.ValueKind != JsonValueKind.Null;
    }

    private int AsInt(string path, JsonElement e)
    {
        // 4.0 is accepted as 4: some exporters write every number as a float.
        if (e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double d)
            && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
            return (int)d;
        throw Wrong(path, e, "an integer");
    }

    private double AsDouble(string path, JsonElement e) =>
        e.ValueKind == JsonValueKind.Number ? e.GetDouble() : throw Wrong(path, e, "a number");

    private string AsString(string path, JsonElement e) =>
        e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(path, e, "a string");

    private bool AsBool(string path, JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Wrong(path, e, "true or false"),
    };

    private ConfigException Wrong(string path, JsonElement e, string expected)
    {
        string raw = e.GetRawText();
        if (raw.Length > 60) raw = raw[..57] + "...";
        return new ConfigException($"{_source}: key '{path}' must be {expected}, got {raw}");
    }
}
