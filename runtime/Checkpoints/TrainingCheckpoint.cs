using System.Globalization;
using System.Text.RegularExpressions;

namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// Saves and resumes training checkpoints laid out as
/// <code>
/// dir/checkpoint-&lt;step&gt;/model.safetensors      weights, Hugging Face names, __metadata__ {"format":"pt"}
///                      config.json            the model config, verbatim
///                      optimizer.safetensors  exp_avg / exp_avg_sq + layout (when there is an optimizer)
///                      trainer_state.json     step, epoch, data position, RNG, LR schedule, recent losses
///                      (extra files)          tokenizer.json, preprocessor_config.json…, byte for byte
/// dir/latest                                 "checkpoint-&lt;step&gt;": the newest complete checkpoint
/// </code>
/// A save writes everything into dir/.tmp-checkpoint-&lt;step&gt;-&lt;random&gt;/, flushes each file to disk, renames the
/// folder into place and only then replaces `latest` (temp file + rename). Each of those steps is atomic on
/// the file system, so a crash at any point leaves the previous checkpoint and `latest` intact; the leftover
/// temp folder is removed by the next save. One saver per directory at a time. For power loss, the temp folder
/// and the parent are also fsynced around the renames (Linux and macOS; best effort, see DirectorySync).
/// </summary>
public static partial class TrainingCheckpoint
{
    public const string LatestFile = "latest";
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";
    public const string IndexFile = "model.safetensors.index.json";
    private const string TempPrefix = ".tmp-checkpoint-";
    private const string TrashPrefix = ".trash-checkpoint-";

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();

    /// <summary>Folder name of the checkpoint for a step.</summary>
    public static string FolderName(long step) => "checkpoint-" + step.ToString(CultureInfo.InvariantCulture);

    /// <summary>Writes checkpoint-&lt;step&gt; atomically, points `latest` at it and prunes; returns its path.</summary>
    public static string Save(string dir, CheckpointContent content, CheckpointOptions? options = null) =>
        Save(dir, content, options ?? new CheckpointOptions(), faults: null);

    internal static string Save(string dir, CheckpointContent content, CheckpointOptions options, ICheckpointFaultInjector? faults)
    {
        Validate(content, options);
        Directory.CreateDirectory(dir);
        RemoveLeftovers(dir);

        long step = content.Trainer.Step;
        string name = FolderName(step);
        string final = Path.Combine(dir, name);
        if (Directory.Exists(final) && RawLatestName(dir) == name)
            throw new ModelException($"{final}: already exists and is the latest checkpoint; refusing to overwrite it");

        string temp = Path.Combine(dir, TempPrefix + step.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(temp);
        try
        {
            faults?.At("temp-created");
            WriteInto(temp, content, options, faults);
        }
        catch when (faults is null)
        {
            // An ordinary failure (disk full, permissions) removes its temp folder; with a fault injector the
            // exception stands for a crash, which cleans nothing, so the next save's clean-up is what is tested.
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }

        // A complete but un-promoted checkpoint-<step> can exist from a run that crashed before updating
        // `latest`; it is not the latest (checked above), so it is moved aside and replaced.
        if (Directory.Exists(final)) MoveToTrash(dir, final);
        _ = DirectorySync.Flush(temp);
        faults?.At("before-rename");
        Directory.Move(temp, final);
        _ = DirectorySync.Flush(dir);
        faults?.At("before-latest");
        WriteLatest(dir, name);
        _ = DirectorySync.Flush(dir);
        faults?.At("before-prune");
        if (options.KeepLast > 0) Prune(dir, options.KeepLast, name);
        RemoveLeftovers(dir);
        return final;
    }

    private static void WriteInto(string temp, CheckpointContent content, CheckpointOptions options, ICheckpointFaultInjector? faults)
    {
        WriteWeights(temp, content.Weights, options);
        faults?.At("weights-written");
        if (content.Optimizer is not null) OptimizerFile.Write(Path.Combine(temp, OptimizerFile.FileName), content.Optimizer);
        faults?.At("optimizer-written");
        WriteDurably(Path.Combine(temp, ConfigFile), System.Text.Encoding.UTF8.GetBytes(content.ConfigJson));
        foreach (var (file, bytes) in content.ExtraFiles) WriteDurably(Path.Combine(temp, file), bytes);
        WriteDurably(Path.Combine(temp, TrainerStateJson.FileName), TrainerStateJson.Write(content.Trainer, options.LossHistoryLength));
        faults?.At("files-written");
    }

    private static void Validate(CheckpointContent content, CheckpointOptions options)
    {
        try { using var _ = System.Text.Json.JsonDocument.Parse(content.ConfigJson); }
        catch (System.Text.Json.JsonException e) { throw new ModelException($"checkpoint: config.json text is not valid JSON ({e.Message.Split('\n')[0].Trim()})", e); }
        if (content.Trainer.Step < 0) throw new ModelException($"checkpoint: step {content.Trainer.Step} is negative");
        if (options.KeepLast < 0) throw new ModelException($"checkpoint: keep-last {options.KeepLast} is negative");
        var reserved = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
            { WeightsFile, ConfigFile, OptimizerFile.FileName, TrainerStateJson.FileName, IndexFile };
        foreach (string file in content.ExtraFiles.Keys)
        {
            if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or ".." || file.StartsWith('.'))
                throw new ModelException($"checkpoint: extra file name '{file}' must be a plain file name");
            if (reserved.Contains(file))
                throw new ModelException($"checkpoint: extra file '{file}' would replace the checkpoint's own file");
        }
        if (content.Optimizer is not null) OptimizerFile.Validate(content.Optimizer, "checkpoint: optimizer state");
        foreach (var (name, data, shape) in content.Weights)
        {
            long count = shape.Aggregate(1L, (a, d) => d < 0 ? -1 : a * d);
            if (count != data.Length)
                throw new ModelException($"checkpoint: weight '{name}' has {data.Length} values, shape {SafetensorsDTypes.FormatShape(shape)} needs {count}");
        }
    }

    private static void WriteWeights(string dir, IReadOnlyList<(string Name, float[] Data, int[] Shape)> weights, CheckpointOptions options)
    {
        var entries = weights.Select(w =>
        {
            long[] shape = w.Shape.Select(d => (long)d).ToArray();
            return options.WeightsDType == CheckpointDType.BF16 ? SafetensorsEntry.BF16(w.Name, w.Data, shape) : SafetensorsEntry.F32(w.Name, w.Data, shape);
        }).ToList();
        // transformers' from_pretrained reads safetensors only with metadata format "pt".
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        int shards = Math.Clamp(options.Shards, 1, Math.Max(1, entries.Count));
        if (shards == 1)
        {
            SafetensorsWriter.Write(Path.Combine(dir, WeightsFile), entries, metadata);
            return;
        }
        // Consecutive tensors, cut where the running byte count passes each k/N of the total (save_pretrained's order).
        long total = entries.Sum(e => (long)e.Data.Length), running = 0;
        var groups = Enumerable.Range(0, shards).Select(_ => new List<SafetensorsEntry>()).ToArray();
        foreach (var entry in entries)
        {
            int k = (int)Math.Min(shards - 1, running * shards / Math.Max(1, total));
            groups[k].Add(entry);
            running += entry.Data.Length;
        }
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int k = 0; k < shards; k++)
        {
            string file = $"model-{k + 1:D5}-of-{shards:D5}.safetensors";
            SafetensorsWriter.Write(Path.Combine(dir, file), groups[k], metadata);
            foreach (var e in groups[k]) map[e.Name] = file;
        }
        var index = new System.Text.Json.Nodes.JsonObject
        {
            ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["total_size"] = total },
            ["weight_map"] = new System.Text.Json.Nodes.JsonObject(map.Select(p => KeyValuePair.Create(p.Key, (System.Text.Json.Nodes.JsonNode?)p.Value))),
        };
        WriteDurably(Path.Combine(dir, IndexFile), System.Text.Encoding.UTF8.GetBytes(index.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n"));
    }

    /// <summary>Writes and flushes to disk; the file lives in the temp folder, so no temp file of its own is needed.</summary>
    private static void WriteDurably(string path, byte[] bytes)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Replaces `latest` atomically: a flushed temp file renamed over it.</summary>
    private static void WriteLatest(string dir, string name)
    {
        string path = Path.Combine(dir, LatestFile);
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        WriteDurably(temp, System.Text.Encoding.UTF8.GetBytes(name + "\n"));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>`latest`'s text, unchecked (a corrupt `latest` must not stop the save that repairs it).</summary>
    private static string? RawLatestName(string dir)
    {
        string path = Path.Combine(dir, LatestFile);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints, never the latest.</summary>
    private static void Prune(string dir, int keep, string latest)
    {
        var old = ListCheckpoints(dir).OrderByDescending(c => c.Step).Skip(keep).Where(c => c.Name != latest);
        foreach (var (_, folder) in old) MoveToTrash(dir, Path.Combine(dir, folder));
    }

    /// <summary>Complete checkpoints in <paramref name="dir"/> (temp and trash folders excluded), by step.</summary>
    public static IReadOnlyList<(long Step, string Name)> ListCheckpoints(string dir)
    {
        if (!Directory.Exists(dir)) return [];
        var result = new List<(long, string)>();
        foreach (string path in Directory.EnumerateDirectories(dir))
        {
            string name = Path.GetFileName(path);
            Match match = CheckpointName().Match(name);
            if (match.Success && long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out long step))
                result.Add((step, name));
        }
        return result.OrderBy(c => c.Item1).ToList();
    }

    /// <summary>A rename first, so a crash halfway through deleting never leaves a half-deleted checkpoint-N.</summary>
    private static void MoveToTrash(string dir, string folder)
    {
        string trash = Path.Combine(dir, TrashPrefix + Path.GetFileName(folder) + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.Move(folder, trash);
        Directory.Delete(trash, recursive: true);
    }

    /// <summary>Temp folders and trash of interrupted saves, and temp files of an interrupted `latest` update.</summary>
    private static void RemoveLeftovers(string dir)
    {
        foreach (string path in Directory.EnumerateDirectories(dir))
        {
            string name = Path.GetFileName(path);
            if (name.StartsWith(TempPrefix, StringComparison.Ordinal) || name.StartsWith(TrashPrefix, StringComparison.Ordinal))
                Directory.Delete(path, recursive: true);
        }
        foreach (string path in Directory.EnumerateFiles(dir, LatestFile + ".tmp-*")) File.Delete(path);
    }
}
