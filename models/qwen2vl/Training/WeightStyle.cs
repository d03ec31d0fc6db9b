using System.Text.Json;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;

namespace Qwen2VL.Model.Training;

/// <summary>
/// How the checkpoint a run starts from stores its weights — element type (bf16 stays bf16), tensor names (legacy
/// <c>model.layers.*</c> or the new <c>model.language_model.*</c> spellings) and shard count — so that the run's
/// checkpoints are written back the same way and load wherever the original did.
/// </summary>
public sealed record WeightStyle(CheckpointDType DType, int Shards, IReadOnlyDictionary<string, string> StoredNames)
{
    public static WeightStyle Detect(string modelDir)
    {
        using var store = WeightStore.OpenDirectory(modelDir);
        var names = store.Names.ToList();
        var floats = names.Select(n => store.Info(n).DType).Where(d => d is SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16).ToList();
        var dtype = floats.Count > 0 && floats.All(d => d == SafetensorsDType.BF16) ? CheckpointDType.BF16 : CheckpointDType.F32;
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in names) stored[CheckpointNames.Canonical(name)] = name;
        return new WeightStyle(dtype, ShardCount(modelDir), stored);
    }

    /// <summary>The name the source checkpoint stores a parameter under (its canonical name when it had none).</summary>
    public string StoredName(string canonical) => StoredNames.TryGetValue(canonical, out var s) ? s : canonical;

    private static int ShardCount(string modelDir)
    {
        var index = Path.Combine(modelDir, TrainingCheckpoint.IndexFile);
        if (!File.Exists(index)) return 1;
        using var doc = StrictJson.ReadFile(index, TrainingCheckpoint.IndexFile);
        if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object) return 1;
        return Math.Max(1, map.EnumerateObject().Select(p => p.Value.ToString()).Distinct(StringComparer.Ordinal).Count());
    }
}
