using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training;

/// <summary>Settings of a training run (the <c>train</c> command's options).</summary>
public sealed record TrainOptions
{
    public required string DataPath { get; init; }
    public required string OutDir { get; init; }
    public int Epochs { get; init; } = 1;
    public int? MaxSteps { get; init; }
    public int BatchSize { get; init; } = 8;
    public int GradientAccumulation { get; init; } = 1;
    public float LearningRate { get; init; } = 1e-3f;
    public float MinLearningRate { get; init; } = 1e-5f;
    public int WarmupSteps { get; init; } = 20;
    public float WeightDecay { get; init; } = 0.01f;
    public float ClipNorm { get; init; } = 1f;
    public IReadOnlyList<string> Freeze { get; init; } = [];
    public int Seed { get; init; } = 1;
    public int SaveEvery { get; init; } = 200;
    public int? MinPixels { get; init; }
    public int? MaxPixels { get; init; }
    public DeviceKind Device { get; init; } = DeviceKind.Cpu;

    /// <summary>Selective activation checkpointing (<see cref="Compiled.Qwen2VLModel.Recompute"/>): less kept memory, more compute.</summary>
    public bool Recompute { get; init; }

    /// <summary>Stop (with a checkpoint) after this many steps of the schedule, as an interrupted run would; rerun to resume.</summary>
    public int? StopAfter { get; init; }
}
