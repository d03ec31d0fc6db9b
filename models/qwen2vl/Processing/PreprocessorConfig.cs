using Qwen2VL.Runtime;
using System.Text.Json;

namespace Qwen2VL.Model.Processing;

/// <summary>
/// The image processor settings of <c>preprocessor_config.json</c> (spec §3.1 defaults table). Keys missing from
/// the file take the Hugging Face <c>Qwen2VLImageProcessor</c> class defaults, not the model repos' values.
/// </summary>
public sealed record PreprocessorConfig
{
    /// <summary>OpenAI CLIP normalisation constants (spec §3.2 step 4).</summary>
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    public int MinPixels { get; init; } = 56 * 56;
    public int MaxPixels { get; init; } = 28 * 28 * 1280;
    public int PatchSize { get; init; } = 14;
    public int TemporalPatchSize { get; init; } = 2;
    public int MergeSize { get; init; } = 2;
    public float[] ImageMean { get; init; } = [.. ClipMean];
    public float[] ImageStd { get; init; } = [.. ClipStd];
    /// <summary>Kept as a double: the reference multiplies the uint8 values by it in float64 (§3.2 step 3).</summary>
    public double RescaleFactor { get; init; } = 1.0 / 255;
    public bool DoRescale { get; init; } = true;
    public bool DoNormalize { get; init; } = true;

    /// <summary>Side length the resized image must be a multiple of: patch · merge (28 for Qwen2-VL).</summary>
    public int Factor => PatchSize * MergeSize;

    /// <summary>Values in one row of pixel_values: C · Tp · P · P (1176 for Qwen2-VL).</summary>
    public int PatchDim => 3 * TemporalPatchSize * PatchSize * PatchSize;

    public static PreprocessorConfig Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = InputFile.ReadAllBytes(path, $"preprocessor config '{path}'");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ModelException)
        {
            throw new PreprocessingException($"cannot read preprocessor config '{path}': {e.Message.ReplaceLineEndings(" ")}", e);
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, StrictJson.DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new PreprocessingException($"'{path}' is not valid JSON: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        using (doc)
        {
            try { StrictJson.Validate(doc, $"'{path}'"); } // one JSON policy for every file
            catch (ModelException e) when (e is not PreprocessingException) { throw new PreprocessingException(e.Message, e); }
            return FromJson(doc.RootElement, path);
        }
    }

    /// <summary>Reads the settings from a parsed preprocessor_config.json; <paramref name="source"/> names it in errors.</summary>
    public static PreprocessorConfig FromJson(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new PreprocessingException($"'{source}': expected a JSON object");
        var reader = new Reader(root, source);
        var defaults = new PreprocessorConfig();

        // transformers v4.49 also accepts size = {shortest_edge, longest_edge}; explicit min/max_pixels win.
        int minPixels = defaults.MinPixels, maxPixels = defaults.MaxPixels;
        if (root.TryGetProperty("size", out var size) && size.ValueKind == JsonValueKind.Object)
        {
            var sizeReader = new Reader(size, source + " size");
            minPixels = sizeReader.Int("shortest_edge") ?? minPixels;
            maxPixels = sizeReader.Int("longest_edge") ?? maxPixels;
        }

        if (reader.Bool("do_resize") == false)
            throw new PreprocessingException($"'{source}': do_resize=false is not supported (Qwen2-VL needs sides that are multiples of patch·merge)");
        if (reader.Int("resample") is int resample && resample != 3)
            throw new PreprocessingException($"'{source}': resample={resample} is not supported, only 3 (bicubic)");

        var config = new PreprocessorConfig
        {
            MinPixels = reader.Int("min_pixels") ?? minPixels,
            MaxPixels = reader.Int("max_pixels") ?? maxPixels,
            PatchSize = reader.Int("patch_size") ?? defaults.PatchSize,
            TemporalPatchSize = reader.Int("temporal_patch_size") ?? defaults.TemporalPatchSize,
            MergeSize = reader.Int("merge_size") ?? defaults.MergeSize,
            ImageMean = reader.Floats("image_mean") ?? defaults.ImageMean,
            ImageStd = reader.Floats("image_std") ?? defaults.ImageStd,
            RescaleFactor = reader.Double("rescale_factor") ?? defaults.RescaleFactor,
            DoRescale = reader.Bool("do_rescale") ?? true,
            DoNormalize = reader.Bool("do_normalize") ?? true,
        };
        config.Validate(source);
        return config;
    }

    /// <summary>Throws a one-line error naming the first inconsistent setting.</summary>
    public void Validate(string source)
    {
        if (PatchSize <= 0 || TemporalPatchSize <= 0 || MergeSize <= 0)
            throw new PreprocessingException(
                $"'{source}': patch_size ({PatchSize}), temporal_patch_size ({TemporalPatchSize}) and merge_size ({MergeSize}) must be positive");
        if (MinPixels <= 0 || MaxPixels < MinPixels)
            throw new PreprocessingException($"'{source}': need 0 < min_pixels ({MinPixels}) <= max_pixels ({MaxPixels})");
        if (ImageMean.Length != 3 || ImageStd.Length != 3)
            throw new PreprocessingException($"'{source}': image_mean and image_std must have 3 values (RGB)");
        if (ImageStd.Any(s => s == 0f))
            throw new PreprocessingException($"'{source}': image_std must not contain 0");
    }

    /// <summary>Typed optional lookups that name the key when its value has the wrong type.</summary>
    readonly struct Reader(JsonElement obj, string source)
    {
        JsonElement? Get(string key) =>
            obj.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        PreprocessingException Wrong(string key, string expected) =>
            new($"'{source}': \"{key}\" must be {expected}");

        public int? Int(string key) => Get(key) is { } v
            ? v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Wrong(key, "an integer")
            : null;

        public double? Double(string key) => Get(key) is { } v
            ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Wrong(key, "a number")
            : null;

        public bool? Bool(string key) => Get(key) is { } v
            ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Wrong(key, "true or false")
            : null;

        /// <summary>A number list, each value rounded to float32 as numpy does when it builds the float32 mean/std.</summary>
        public float[]? Floats(string key)
        {
            if (Get(key) is not { } v) return null;
            if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number))
                throw Wrong(key, "a list of numbers");
            return v.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
        }
    }
}
