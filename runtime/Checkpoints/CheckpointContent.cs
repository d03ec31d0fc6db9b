namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// Everything a training run needs to continue where it stopped: the weights (Hugging Face names), the model's
/// config.json text, byte-for-byte extra files (tokenizer.json, preprocessor_config.json…), the optimizer's
/// moments and the trainer's counters, data position and RNG state.
/// </summary>
public sealed record CheckpointContent(
    IReadOnlyList<(string Name, float[] Data, int[] Shape)> Weights,
    string ConfigJson,
    OptimizerState? Optimizer,
    TrainerState Trainer)
{
    /// <summary>Files copied verbatim into the checkpoint, keyed by plain file name (no folders).</summary>
    public IReadOnlyDictionary<string, byte[]> ExtraFiles { get; init; } = new Dictionary<string, byte[]>();
}

/// <summary>
/// Adam-style optimizer state: the first and second moments of every trainable parameter, each flattened into
/// one array; <see cref="Layout"/> says where each parameter's slice starts and what shape it has.
/// </summary>
public sealed record OptimizerState(float[] M, float[] V, IReadOnlyList<OptimizerSlot> Layout)
{
    /// <summary>
    /// The f32 master weights (every parameter, in the trainer's flat order), kept here when the weights file is
    /// saved in a narrower dtype (bf16), so that a resumed run continues from the exact masters.
    /// </summary>
    public float[]? Master { get; init; }
}

/// <summary>Parameter <paramref name="Name"/> occupies M[Offset .. Offset + product(Shape)) (and the same in V).</summary>
public sealed record OptimizerSlot(string Name, long Offset, int[] Shape);

/// <summary>
/// Where the data loader stands: which pass (shuffled order) over the data and the index of the next example in
/// it. The caller decides the exact meaning; the checkpoint stores the pair unchanged.
/// </summary>
public readonly record struct DataPosition(int Pass, int Index);

/// <summary>The trainer's counters, written as trainer_state.json.</summary>
public sealed record TrainerState
{
    /// <summary>Optimizer steps completed; names the folder checkpoint-&lt;Step&gt;.</summary>
    public required long Step { get; init; }
    public required int Epoch { get; init; }
    public required DataPosition DataPosition { get; init; }

    /// <summary>The random generator's state, opaque bytes (stored base64).</summary>
    public required byte[] RngState { get; init; }

    /// <summary>Learning-rate schedule state by name (base_lr, warmup_steps, current_lr…).</summary>
    public IReadOnlyDictionary<string, double> LearningRateSchedule { get; init; } = new Dictionary<string, double>();

    /// <summary>The losses of the most recent steps (trimmed to <see cref="CheckpointOptions.LossHistoryLength"/> on save).</summary>
    public IReadOnlyList<(long Step, double Loss)> LossHistory { get; init; } = [];
}

/// <summary>Element type of model.safetensors (optimizer state is always F32, as moments need the precision).</summary>
public enum CheckpointDType { F32, BF16 }

public sealed record CheckpointOptions
{
    public CheckpointDType WeightsDType { get; init; } = CheckpointDType.F32;

    /// <summary>
    /// Weight files: 1 writes model.safetensors; N &gt; 1 writes model-0000k-of-0000N.safetensors and
    /// model.safetensors.index.json, as Hugging Face's save_pretrained shards a large model.
    /// </summary>
    public int Shards { get; init; } = 1;

    /// <summary>Keep only the newest K complete checkpoints (0 keeps all). The one named by `latest` is never pruned.</summary>
    public int KeepLast { get; init; }

    /// <summary>How many of the most recent losses trainer_state.json keeps.</summary>
    public int LossHistoryLength { get; init; } = 100;
}
