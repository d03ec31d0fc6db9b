using System.Text.Json;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>
/// What a caller may set for one answer; null leaves the model's default (<see cref="GenerationDefaults"/>) in force,
/// field by field, as keyword arguments to transformers' <c>generate</c> override only themselves.
/// <see cref="Temperature"/> is the switch between decoding modes: 0 means greedy (<c>do_sample=False</c>), a
/// positive value samples at that temperature (<c>do_sample=True</c>).
/// </summary>
public sealed record SamplingOverrides
{
    public double? Temperature { get; init; }
    public int? TopK { get; init; }
    public double? TopP { get; init; }
    public double? RepetitionPenalty { get; init; }
    public int? Seed { get; init; }

    public static SamplingOverrides None { get; } = new();
}

/// <summary>
/// A model's generation defaults: <c>generation_config.json</c> when the folder has one, else what transformers'
/// <c>GenerationConfig.from_model_config</c> derives from config.json. Keys the file leaves out take the
/// <c>GenerationConfig</c> class defaults (do_sample false, temperature 1, top_k 50, top_p 1, repetition_penalty 1),
/// so a file with <c>"do_sample": true</c> and no <c>top_k</c> samples among the 50 most likely tokens, as in
/// transformers. The file's <c>eos_token_id</c> replaces config.json's.
/// </summary>
public sealed record GenerationDefaults
{
    public const string FileName = "generation_config.json";

    /// <summary>The file read, or null when the defaults come from config.json alone.</summary>
    public string? Source { get; init; }
    public IReadOnlyList<long> EosTokenIds { get; init; } = [];
    public long? PadTokenId { get; init; }
    public bool DoSample { get; init; }
    public double Temperature { get; init; } = 1.0;
    public int TopK { get; init; } = 50;
    public double TopP { get; init; } = 1.0;
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>The file's <c>max_new_tokens</c>, if it sets one.</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>transformers' defaults for a model whose folder has no generation_config.json.</summary>
    public static GenerationDefaults FromModelConfig(IReadOnlyList<long> eosTokenIds, long? padTokenId) =>
        new() { EosTokenIds = eosTokenIds, PadTokenId = padTokenId };

    /// <summary>
    /// Reads <c>generation_config.json</c> from <paramref name="modelDir"/>, or falls back to the ids of config.json.
    /// A key of the wrong type or out of range is a <see cref="ConfigException"/> naming the file and the key.
    /// </summary>
    public static GenerationDefaults Load(string modelDir, IReadOnlyList<long> configEos, long? configPad)
    {
        string path = Path.Combine(modelDir, FileName);
        if (!File.Exists(path)) return FromModelConfig(configEos, configPad);
        var file = ModelConfig.Load(path);
        var defaults = new GenerationDefaults
        {
            Source = path,
            EosTokenIds = file.Has("eos_token_id") ? Ids(file, "eos_token_id") : configEos,
            PadTokenId = file.Has("pad_token_id") ? file.GetInt("pad_token_id") : configPad,
            DoSample = file.GetBool("do_sample", false),
            Temperature = file.GetDouble("temperature", 1.0),
            TopK = file.GetInt("top_k", 50),
            TopP = file.GetDouble("top_p", 1.0),
            RepetitionPenalty = file.GetDouble("repetition_penalty", 1.0),
            MaxNewTokens = file.Has("max_new_tokens") ? file.GetInt("max_new_tokens") : null,
        };
        defaults.Validate();
        return defaults;
    }

    /// <summary>
    /// The sampling settings of one answer: each override replaces its own default. As in transformers, the
    /// repetition penalty applies in both modes, while temperature, top-k and top-p shape only sampling.
    /// </summary>
    public SamplingOptions Resolve(SamplingOverrides overrides)
    {
        bool sample = overrides.Temperature is { } t ? t > 0 : DoSample;
        double temperature = overrides.Temperature is { } t2 && t2 > 0 ? t2 : Temperature;
        var options = new SamplingOptions
        {
            Temperature = sample ? temperature : 0,
            TopK = sample ? overrides.TopK ?? TopK : 0,
            TopP = sample ? overrides.TopP ?? TopP : 1.0,
            RepetitionPenalty = overrides.RepetitionPenalty ?? RepetitionPenalty,
            Seed = overrides.Seed,
        };
        if (overrides.TopK is < 0) throw new ModelException($"top-k must be ≥ 0 (0 = off), got {overrides.TopK}");
        if (overrides.TopP is { } p && !(p >= 0 && p <= 1)) throw new ModelException($"top-p must be in [0, 1], got {p}");
        if (overrides.Temperature is { } t3 && (!(t3 >= 0) || double.IsInfinity(t3)))
            throw new ModelException($"temperature must be ≥ 0 (0 = greedy), got {t3}");
        options.Validate();
        return options;
    }

    /// <summary>One line for the user: where the defaults came from and what they are.</summary>
    public string Describe()
    {
        string mode = DoSample
            ? $"sampling (temperature {Temperature:G4}, top-k {TopK}, top-p {TopP:G4})"
            : "greedy";
        string penalty = RepetitionPenalty != 1.0 ? $", repetition penalty {RepetitionPenalty:G4}" : "";
        return Source is null ? $"{mode}{penalty} (transformers' defaults; no {FileName})" : $"{mode}{penalty} (from {FileName})";
    }

    private void Validate()
    {
        string where = Source ?? FileName;
        if (DoSample && !(Temperature > 0))
            throw new ConfigException($"{where}: do_sample is true but temperature is {Temperature}; transformers requires a positive temperature (set do_sample to false for greedy decoding)");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature))
            throw new ConfigException($"{where}: temperature must be ≥ 0, got {Temperature}");
        if (TopK < 0) throw new ConfigException($"{where}: top_k must be ≥ 0, got {TopK}");
        if (!(TopP >= 0 && TopP <= 1)) throw new ConfigException($"{where}: top_p must be in [0, 1], got {TopP}");
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
            throw new ConfigException($"{where}: repetition_penalty must be a positive number, got {RepetitionPenalty}");
        if (MaxNewTokens is < 0) throw new ConfigException($"{where}: max_new_tokens must be ≥ 0, got {MaxNewTokens}");
    }

    private static long[] Ids(ModelConfig file, string key) => file.Root.GetProperty(key).ValueKind == JsonValueKind.Array
        ? file.GetIntArray(key).Select(i => (long)i).ToArray()
        : [file.GetInt(key)];
}
