using System.Globalization;
using System.Text.Json;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Reference;

/// <summary>
/// Normalises the config.json layouts of spec §0.2 behind one lookup by canonical (legacy, flat) dotted key:
/// text keys such as <c>hidden_size</c> are looked up in a nested <c>text_config</c> first (newer saves), then at the
/// top level (legacy); <c>rope_scaling.*</c> also answers from v5's <c>rope_parameters.*</c>; and the vision
/// spellings <c>in_channels</c>/<c>in_chans</c> and <c>patch_size</c>/<c>spatial_patch_size</c> stand in for each
/// other. Array entries are addressed by index (<c>rope_scaling.mrope_section.0</c>).
/// </summary>
public sealed class ConfigView(ModelConfig config)
{
    private static readonly Dictionary<string, string> VisionAliases = new()
    {
        ["in_channels"] = "in_chans",
        ["in_chans"] = "in_channels",
        ["patch_size"] = "spatial_patch_size",
        ["spatial_patch_size"] = "patch_size",
    };

    public ModelConfig Config { get; } = config;

    public static ConfigView Load(string configPath) => new(ModelConfig.Load(configPath));

    /// <summary>The value of a numeric (or boolean, as 1/0) key, or null when no layout has it.</summary>
    public double? Lookup(string key)
    {
        foreach (var candidate in Candidates(key))
            if (Find(candidate) is { } e)
                return e.ValueKind switch
                {
                    JsonValueKind.Number => e.GetDouble(),
                    JsonValueKind.True => 1,
                    JsonValueKind.False => 0,
                    _ => throw new ConfigException($"config.json: key '{candidate}' must be a number, got {e.GetRawText()}"),
                };
        return null;
    }

    public int GetInt(string key, int? defaultValue = null)
    {
        double? v = Lookup(key);
        if (v is null)
            return defaultValue ?? throw new ConfigException($"config.json: missing key '{key}'");
        if (v.Value != Math.Floor(v.Value) || Math.Abs(v.Value) > int.MaxValue)
            throw new ConfigException($"config.json: key '{key}' must be an integer, got {v.Value.ToString(CultureInfo.InvariantCulture)}");
        return (int)v.Value;
    }

    public double GetDouble(string key, double? defaultValue = null) =>
        Lookup(key) ?? defaultValue ?? throw new ConfigException($"config.json: missing key '{key}'");

    public bool GetBool(string key, bool defaultValue) => Lookup(key) is { } v ? v != 0 : defaultValue;

    /// <summary>The dotted paths tried for a canonical key, in order.</summary>
    public static IEnumerable<string> Candidates(string key)
    {
        if (key.StartsWith("vision_config.", StringComparison.Ordinal))
        {
            yield return key;
            var parts = key.Split('.');
            if (parts.Length == 2 && VisionAliases.TryGetValue(parts[1], out var alias)) yield return "vision_config." + alias;
            yield break;
        }
        var spellings = new List<string> { key };
        if (key.StartsWith("rope_scaling.", StringComparison.Ordinal))
            spellings.Add("rope_parameters." + key["rope_scaling.".Length..]);
        if (key == "rope_theta")
            spellings.Add("rope_parameters.rope_theta"); // v5 keeps the rope base inside rope_parameters
        foreach (var s in spellings) yield return "text_config." + s;
        foreach (var s in spellings) yield return s;
    }

    private JsonElement? Find(string path)
    {
        var e = Config.Root;
        foreach (var segment in path.Split('.'))
        {
            if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty(segment, out var child)) e = child;
            else if (e.ValueKind == JsonValueKind.Array && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out int i)
                     && i < e.GetArrayLength()) e = e[i];
            else return null;
        }
        return e.ValueKind == JsonValueKind.Null ? null : e;
    }
}
