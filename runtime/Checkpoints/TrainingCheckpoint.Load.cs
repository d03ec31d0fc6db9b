namespace Qwen2VL.Runtime.Checkpoints;

public static partial class TrainingCheckpoint
{
    /// <summary>
    /// The checkpoint `latest` names, or null when <paramref name="dir"/> has no `latest` (no save has completed).
    /// A missing or corrupt piece is a one-line <see cref="ModelException"/> naming the file.
    /// </summary>
    public static CheckpointContent? LoadLatest(string dir)
    {
        string? name = ReadLatestName(dir);
        return name is null ? null : Load(Path.Combine(dir, name));
    }

    /// <summary>Path of the checkpoint `latest` names, or null when there is none yet.</summary>
    public static string? LatestPath(string dir)
    {
        string? name = ReadLatestName(dir);
        return name is null ? null : Path.Combine(dir, name);
    }

    /// <summary>Loads one checkpoint folder; weights come back as float32 (BF16 widened exactly), in saved order.</summary>
    public static CheckpointContent Load(string checkpointDir)
    {
        string label = Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpointDir));
        if (!Directory.Exists(checkpointDir))
            throw new ModelException($"{label}: checkpoint folder not found ({checkpointDir})");

        string statePath = Required(checkpointDir, label, TrainerStateJson.FileName);
        TrainerState trainer = TrainerStateJson.Read(File.ReadAllBytes(statePath), $"{label}/{TrainerStateJson.FileName}");
        string config = File.ReadAllText(Required(checkpointDir, label, ConfigFile));
        var weights = File.Exists(Path.Combine(checkpointDir, IndexFile))
            ? ReadShardedWeights(checkpointDir)
            : ReadWeights(Required(checkpointDir, label, WeightsFile));
        string optimizerPath = Path.Combine(checkpointDir, OptimizerFile.FileName);
        OptimizerState? optimizer = File.Exists(optimizerPath)
            ? OptimizerFile.Read(optimizerPath, $"{label}/{OptimizerFile.FileName}")
            : null;

        var own = new HashSet<string>(StringComparer.Ordinal) { WeightsFile, ConfigFile, OptimizerFile.FileName, TrainerStateJson.FileName, IndexFile };
        var extra = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string path in Directory.EnumerateFiles(checkpointDir))
        {
            string file = Path.GetFileName(path);
            if (!own.Contains(file) && !file.StartsWith('.') && !file.Contains(".tmp-", StringComparison.Ordinal) && !ShardName().IsMatch(file))
                extra[file] = File.ReadAllBytes(path);
        }
        return new CheckpointContent(weights, config, optimizer, trainer) { ExtraFiles = extra };
    }

    private static string Required(string checkpointDir, string label, string file)
    {
        string path = Path.Combine(checkpointDir, file);
        return File.Exists(path) ? path : throw new ModelException($"{label}/{file}: file not found");
    }

    /// <summary>The weights of a sharded checkpoint, in the order of the shards and, within each, of the data.</summary>
    private static List<(string Name, float[] Data, int[] Shape)> ReadShardedWeights(string checkpointDir)
    {
        using var store = WeightStore.OpenDirectory(checkpointDir);
        var shards = Directory.EnumerateFiles(checkpointDir).Select(Path.GetFileName).Where(f => ShardName().IsMatch(f!)).Order(StringComparer.Ordinal);
        var result = new List<(string Name, float[] Data, int[] Shape)>();
        foreach (var shard in shards)
        {
            using var file = SafetensorsFile.Open(Path.Combine(checkpointDir, shard!));
            result.AddRange(file.Tensors.Values.OrderBy(t => t.Offset)
                .Select(t => (t.Name, file.ReadFloat32(t.Name), t.Shape.Select(d => checked((int)d)).ToArray())));
        }
        if (result.Count != store.Names.Count())
            throw new ModelException($"{Path.GetFileName(checkpointDir)}/{IndexFile}: lists {store.Names.Count()} tensors, the shards hold {result.Count}");
        return result;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial System.Text.RegularExpressions.Regex ShardName();

    private static List<(string Name, float[] Data, int[] Shape)> ReadWeights(string path)
    {
        using SafetensorsFile file = SafetensorsFile.Open(path);
        // The header is a JSON object (unordered); data offsets recover the order the weights were saved in.
        return file.Tensors.Values.OrderBy(t => t.Offset)
            .Select(t => (t.Name, file.ReadFloat32(t.Name), t.Shape.Select(d => checked((int)d)).ToArray()))
            .ToList();
    }

    /// <summary>The checkpoint folder name `latest` holds, checked to exist; null when there is no `latest`.</summary>
    private static string? ReadLatestName(string dir)
    {
        string path = Path.Combine(dir, LatestFile);
        if (!File.Exists(path)) return null;
        string name = File.ReadAllText(path).Trim();
        if (!CheckpointName().IsMatch(name))
            throw new ModelException($"{path}: expected a folder name like checkpoint-100, found '{(name.Length > 40 ? name[..40] + "…" : name)}'");
        if (!Directory.Exists(Path.Combine(dir, name)))
            throw new ModelException($"{path}: names {name}, which does not exist");
        return name;
    }
}
