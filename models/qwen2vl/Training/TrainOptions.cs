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

    /// <summary>Pack each micro-batch's samples into as few rows of at most <see cref="MaxLength"/> tokens as first-fit gives.</summary>
    public bool Pack { get; init; }

    /// <summary>
    /// Compute with bf16 weights: f32 master weights and AdamW moments, and after each step the fused AdamW kernel
    /// writes the masters rounded to bfloat16 (ties to even) into 16-bit compute weights, which the forward and backward
    /// GEMMs and the embedding gather read (norms, biases and the patch conv: f32 copies of their rounded values).
    /// Activations and gradients stay f32.
    /// </summary>
    public bool Bf16 { get; init; }

    /// <summary>The token budget of a packed row (a longer sample is an error).</summary>
    public int MaxLength { get; init; } = 2048;

    /// <summary>Selective activation checkpointing (<see cref="Compiled.Qwen2VLModel.Recompute"/>): less kept memory, more compute.</summary>
    public bool Recompute { get; init; }

    /// <summary>Refuse a checkpoint holding tensors the model does not use (default: warn).</summary>
    public bool Strict { get; init; }

    /// <summary>Where the run says what it does besides progress ("resuming from step N", "nothing to do").</summary>
    public TextWriter? Notes { get; init; }

    /// <summary>Where the run warns about settings that work but are probably not meant (a warmup as long as the run).</summary>
    public TextWriter? Warnings { get; init; }

    /// <summary>Data-parallel ranks (<c>--dp</c>); the ranks themselves come from the communicator given to <see cref="Trainer.RunLocked"/>.</summary>
    public int DataParallel { get; init; } = 1;

    /// <summary>ZeRO stage (<c>--zero</c>): 0 keeps the whole AdamW state on every rank, 1 shards it over the data-parallel ranks.</summary>
    public int Zero { get; init; }

    /// <summary>Reduce gradient buckets while the backward pass runs (false: all after it, for measuring the overlap).</summary>
    public bool Overlap { get; init; } = true;

    /// <summary>Gradient bucket size in floats (<c>--bucket-mb</c> · 2^18).</summary>
    public int BucketElements { get; init; } = Distributed.DataParallelGroup.DefaultBucketElements;

    /// <summary>Stop (with a checkpoint) after this many steps of the schedule, as an interrupted run would; rerun to resume.</summary>
    public int? StopAfter { get; init; }
}
