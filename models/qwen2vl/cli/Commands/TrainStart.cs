using System.Text.Json.Nodes;
using Qwen2VL.Model.Training;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;

namespace Qwen2VL.Cli;

/// <summary>
/// Where a <c>train</c> run starts (<c>--model DIR</c> or <c>--config shapes|tiny</c>) and how its output folder is
/// set up: atomically (<c>init</c> is built in a temp folder and renamed), under the folder's lock, and refused when
/// the folder already holds a run of another model. A refused run leaves the folder as it found it.
/// </summary>
internal sealed record TrainStart(string? ModelDir, string? ConfigName, string? Tokenizer, int Seed)
{
    /// <summary>What <c>--out/run.json</c> records of the start, to refuse resuming with another model.</summary>
    public const string RunFile = "run.json";
    private const string InitTempPrefix = ".tmp-init-";

    public static TrainStart Parse(string? model, string? config, string? tokenizer, int seed)
    {
        if ((model is null) == (config is null))
            throw new ModelException("give exactly one of --model DIR and --config shapes|tiny");
        if (model is not null)
        {
            if (!Directory.Exists(model)) throw new ModelException($"model directory not found: {model}");
            InputFile.RequireRegular(Path.Combine(model, "config.json"), $"{model}/config.json");
            if (tokenizer is not null) throw new ModelException("--tokenizer goes with --config; a --model folder has its own tokenizer.json");
            return new TrainStart(Path.GetFullPath(model), null, null, seed);
        }
        if (config is not ("shapes" or "tiny"))
            throw new ModelException($"unknown --config '{config}'; use shapes or tiny");
        if (tokenizer is not null) InputFile.RequireRegular(tokenizer, $"--tokenizer {tokenizer}");
        return new TrainStart(null, config, tokenizer is null ? null : Path.GetFullPath(tokenizer), seed);
    }

    private string Kind => ModelDir is not null ? "model" : "config:" + ConfigName;

    private string ConfigJson => ConfigName switch
    {
        null => System.Text.Encoding.UTF8.GetString(InputFile.ReadAllBytes(Path.Combine(ModelDir!, "config.json"), "config.json")),
        "shapes" => ShapesModelConfig.Json,
        _ => File.ReadAllText(Path.Combine(DefaultModel.FixtureDirectory, "config.json")),
    };

    /// <summary>
    /// Checks that <paramref name="outDir"/> holds nothing or a run of this same start, builds <c>init</c> for
    /// <c>--config</c> when it is not there yet, and returns the folder the trainer starts from.
    /// </summary>
    public string Prepare(string outDir)
    {
        var configJson = ConfigJson;
        CheckSameRun(outDir, configJson);
        if (ModelDir is not null) return ModelDir;
        var init = Path.Combine(outDir, "init");
        foreach (var stale in Directory.EnumerateDirectories(outDir, InitTempPrefix + "*"))
            Directory.Delete(stale, recursive: true); // a set-up killed half-way
        if (File.Exists(Path.Combine(init, "model.safetensors")))
            return init; // resuming: the initial weights were written by the first run
        if (Directory.Exists(init)) Directory.Delete(init, recursive: true); // not ours or incomplete: rebuilt below
        var temp = Path.Combine(outDir, InitTempPrefix + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Build(temp, configJson);
            Directory.Move(temp, init);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }
        return init;
    }

    private void Build(string dir, string configJson)
    {
        ModelInit.Write(dir, configJson, Seed);
        if (ConfigName == "shapes")
        {
            File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), ShapesRecipe.PreprocessorJson);
            if (Tokenizer is null) Qwen2VL.Model.Training.Synthetic.ShapesTokenizer.Build(Path.Combine(dir, "tokenizer.json"));
        }
        else
        {
            File.Copy(Path.Combine(DefaultModel.FixtureDirectory, "preprocessor_config.json"), Path.Combine(dir, "preprocessor_config.json"), true);
        }
        var tokenizer = Tokenizer ?? (ConfigName == "tiny" ? Path.Combine(DefaultModel.FixtureDirectory, "tokenizer.json") : null);
        if (tokenizer is not null) File.WriteAllBytes(Path.Combine(dir, "tokenizer.json"), InputFile.ReadAllBytes(tokenizer, "--tokenizer"));
    }

    /// <summary>
    /// Refuses an output folder that holds a run started from another model or config (its checkpoints would be
    /// resumed with the wrong weights, or the wrong <c>init</c> silently reused); records this start otherwise.
    /// </summary>
    private void CheckSameRun(string outDir, string configJson)
    {
        var path = Path.Combine(outDir, RunFile);
        var config = ParseConfig(configJson, "config.json");
        if (File.Exists(path))
        {
            using var doc = StrictJson.ReadFile(path, $"{outDir}/{RunFile}");
            var recorded = JsonNode.Parse(doc.RootElement.GetRawText())!.AsObject();
            var kind = recorded["start"]?.GetValue<string>();
            if (kind != Kind)
                throw new ModelException($"{outDir} holds a run started with {Describe(kind)}, not {Describe(Kind)}; use another --out");
            if (!JsonNode.DeepEquals(recorded["config"], config))
                throw new ModelException($"{outDir} holds a run of a model with another config.json than {Describe(Kind)}; use another --out");
            return;
        }
        // An older --out (before run.json) or a foreign folder: compare with its latest checkpoint's config.
        if (TrainingCheckpoint.LatestPath(outDir) is { } latest)
        {
            var saved = ParseConfig(System.Text.Encoding.UTF8.GetString(InputFile.ReadAllBytes(Path.Combine(latest, "config.json"), "config.json")), $"{Path.GetFileName(latest)}/config.json");
            if (!JsonNode.DeepEquals(saved, config))
                throw new ModelException($"{outDir} holds checkpoints of a model with another config.json than {Describe(Kind)}; use another --out");
        }
        var record = new JsonObject { ["start"] = Kind, ["model"] = ModelDir, ["seed"] = Seed, ["config"] = config };
        AtomicFile.WriteAllText(path, record.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    private static JsonNode ParseConfig(string json, string source)
    {
        using var doc = StrictJson.Parse(json, source);
        return JsonNode.Parse(doc.RootElement.GetRawText())!;
    }

    private static string Describe(string? kind) => kind switch
    {
        "model" => "--model",
        { } k when k.StartsWith("config:", StringComparison.Ordinal) => "--config " + k["config:".Length..],
        _ => "an unknown start",
    };

    /// <summary>
    /// Runs <paramref name="body"/> with <paramref name="outDir"/> created and locked. When it fails before this run
    /// saved a checkpoint, everything it added to the folder is removed (the whole folder when it made it), so a
    /// refused run leaves nothing behind.
    /// </summary>
    public static T InOutputFolder<T>(string outDir, Func<OutputLock, bool, T> body)
    {
        bool existed = Directory.Exists(outDir);
        var before = existed ? Directory.EnumerateFileSystemEntries(outDir).ToHashSet(StringComparer.Ordinal) : [];
        Directory.CreateDirectory(outDir);
        string? latestBefore = null;
        OutputLock? held = null;
        try
        {
            held = OutputLock.Acquire(outDir);
            latestBefore = ReadLatest(outDir);
            return body(held, !existed);
        }
        catch when (held is not null)
        {
            bool savedNow = ReadLatest(outDir) != latestBefore;
            held.Dispose();
            held = null;
            if (!savedNow) RemoveAdded(outDir, existed, before);
            throw;
        }
        finally
        {
            held?.Dispose();
        }
    }

    private static string? ReadLatest(string dir)
    {
        var path = Path.Combine(dir, TrainingCheckpoint.LatestFile);
        try { return File.Exists(path) ? File.ReadAllText(path) : null; }
        catch (IOException) { return null; }
    }

    private static void RemoveAdded(string outDir, bool existed, HashSet<string> before)
    {
        try
        {
            if (!existed)
            {
                Directory.Delete(outDir, recursive: true);
                return;
            }
            foreach (var entry in Directory.EnumerateFileSystemEntries(outDir).Where(e => !before.Contains(e)).ToList())
            {
                if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
                else File.Delete(entry);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the original error is what the user needs to see.
        }
    }
}
