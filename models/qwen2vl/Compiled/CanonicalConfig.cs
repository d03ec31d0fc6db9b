using System.Text.Json;
using System.Text.Json.Nodes;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// Rewrites any config.json layout of spec §0.2 into the flat legacy layout the generated runners read
/// (<c>hidden_size</c>, <c>rope_scaling.mrope_section.0</c>, <c>vision_config.in_channels</c>, …), following the
/// same precedence as <see cref="Reference.ConfigView"/>: a nested <c>text_config</c> wins over top-level keys,
/// <c>rope_parameters</c> (v5) stands in for <c>rope_scaling</c> (and its <c>rope_theta</c> for the top-level one), and the vision spellings <c>in_chans</c> /
/// <c>spatial_patch_size</c> stand in for <c>in_channels</c> / <c>patch_size</c>.
/// </summary>
public static class CanonicalConfig
{
    public static ModelConfig Load(string path)
    {
        const string name = "config.json";
        // Read once under the one JSON policy (a regular file, bounded, strict UTF-8): ModelConfig.Load does that.
        return FromJson(ModelConfig.Load(path).Root.GetRawText(), name);
    }

    public static ModelConfig FromJson(string json, string sourceName)
    {
        // Parse once through ModelConfig so that malformed JSON gets its one-line message.
        var original = ModelConfig.Parse(json, sourceName);
        var flat = JsonNode.Parse(original.Root.GetRawText())!.AsObject();

        if (flat["text_config"] is JsonObject text)
            foreach (var (key, value) in text)
                flat[key] = value?.DeepClone();
        // v5 keeps the rope base inside rope_parameters; the decoder's [Const] reads the top-level key.
        if (flat["rope_theta"] is null && flat["rope_parameters"]?["rope_theta"] is JsonNode theta)
            flat["rope_theta"] = theta.DeepClone();
        if (flat["rope_scaling"] is null && flat["rope_parameters"] is JsonNode rope)
            flat["rope_scaling"] = rope.DeepClone();
        if (flat["vision_config"] is JsonObject vision)
        {
            Alias(vision, "in_channels", "in_chans");
            Alias(vision, "patch_size", "spatial_patch_size");
        }

        var config = ModelConfig.Parse(flat.ToJsonString(), sourceName);
        CheckSupported(config, sourceName);
        return config;
    }

    private static void PositiveFloat(ModelConfig config, string sourceName, string key)
    {
        if (!config.Has(key)) return;
        double value = config.GetDouble(key);
        if (!(value > 0) || double.IsInfinity(value) || float.IsInfinity((float)value))
            throw new ConfigException($"{sourceName}: {key} = {value} must be a positive finite number");
    }

    private static void Alias(JsonObject section, string canonical, string alternative)
    {
        if (section[canonical] is null && section[alternative] is JsonNode value)
            section[canonical] = value.DeepClone();
    }

    private static void CheckSupported(ModelConfig config, string sourceName)
    {
        // rms_norm_eps and rope_theta are [Const]s of the decoder modules: any value runs. A value that would not make
        // sense is refused here by name rather than producing NaNs later.
        PositiveFloat(config, sourceName, "rms_norm_eps");
        PositiveFloat(config, sourceName, "rope_theta");
        ConfigRules.Check(config, sourceName);
        if (config.Root.TryGetProperty("use_sliding_window", out var sliding) && sliding.ValueKind == JsonValueKind.True)
            throw new ConfigException($"{sourceName}: use_sliding_window = true is not supported (Qwen2-VL releases use full attention)");
    }
}
