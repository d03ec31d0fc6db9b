using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;
using Xunit;

namespace Qwen2VL.Tests.Training.Loop;

/// <summary>
/// The training loop on a small shapes set: the loss falls, frozen parameters do not move, and a run stopped after
/// a checkpoint and started again continues with exactly the losses of an uninterrupted run; recomputation (train
/// --recompute) gives exactly the same losses.
/// </summary>
public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (string Model, string Data) Prepare() => ShapesRecipe.Prepare(Path.Combine(_dir, "work"), samples: 48, seed: 3);

    private static TrainOptions Options(string data, string outDir, int steps, int saveEvery = 100) => new()
    {
        DataPath = data, OutDir = outDir, MaxSteps = steps, BatchSize = 4, LearningRate = 3e-3f, WarmupSteps = 2, SaveEvery = saveEvery, Seed = 5,
    };

    [Fact]
    public void LossFallsOnTheTrainingData()
    {
        var (model, data) = Prepare();
        var outDir = Path.Combine(_dir, "run");
        Trainer.Run(model, Options(data, outDir, steps: 30));
        var rows = LossLog.Read(Path.Combine(outDir, "loss.csv"));
        Assert.Equal(30, rows.Count);
        Assert.True(rows.TakeLast(5).Average(r => r.Loss) < 0.6 * rows.Take(5).Average(r => r.Loss),
            $"loss went from {rows.Take(5).Average(r => r.Loss):F3} to {rows.TakeLast(5).Average(r => r.Loss):F3}");
        Assert.True(File.Exists(Path.Combine(outDir, "loss.png")));
        // The final checkpoint is a model directory the inference side loads.
        using var trained = Qwen2VLModel.Load(TrainingCheckpoint.LatestPath(outDir)!, DeviceKind.Cpu);
        Assert.Equal(96, trained.Hidden);
    }

    [Fact]
    public void ResumingContinuesWithTheSameLossesAsAnUninterruptedRun()
    {
        var (model, data) = Prepare();
        var straight = Path.Combine(_dir, "straight");
        Trainer.Run(model, Options(data, straight, steps: 8, saveEvery: 4));
        var resumed = Path.Combine(_dir, "resumed");
        Trainer.Run(model, Options(data, resumed, steps: 8, saveEvery: 4) with { StopAfter = 4 }); // stops after the step-4 checkpoint…
        Trainer.Run(model, Options(data, resumed, steps: 8, saveEvery: 4)); // …and picks up from it
        var a = LossLog.Read(Path.Combine(straight, "loss.csv")).Select(r => r.Loss).ToArray();
        var b = LossLog.Read(Path.Combine(resumed, "loss.csv")).Select(r => r.Loss).ToArray();
        Assert.Equal(8, b.Length);
        Assert.Equal(a, b);
    }

    [Fact]
    public void RecomputeTrainsWithTheSameLosses()
    {
        var (model, data) = Prepare();
        var kept = Path.Combine(_dir, "kept");
        Trainer.Run(model, Options(data, kept, steps: 3));
        var recomputed = Path.Combine(_dir, "recomputed");
        Trainer.Run(model, Options(data, recomputed, steps: 3) with { Recompute = true });
        var a = LossLog.Read(Path.Combine(kept, "loss.csv")).Select(r => r.Loss).ToArray();
        var b = LossLog.Read(Path.Combine(recomputed, "loss.csv")).Select(r => r.Loss).ToArray();
        Assert.Equal(3, b.Length);
        Assert.Equal(a, b);
    }

    [Fact]
    public void FrozenParametersKeepTheirValues()
    {
        var (model, data) = Prepare();
        var outDir = Path.Combine(_dir, "frozen");
        Trainer.Run(model, Options(data, outDir, steps: 3) with { Freeze = ["visual.*"] });
        using var before = SafetensorsFile.Open(Path.Combine(model, "model.safetensors"));
        using var after = SafetensorsFile.Open(Path.Combine(TrainingCheckpoint.LatestPath(outDir)!, "model.safetensors"));
        Assert.Equal(before.ReadFloat32("visual.blocks.0.attn.qkv.weight"), after.ReadFloat32("visual.blocks.0.attn.qkv.weight"));
        Assert.NotEqual(before.ReadFloat32("model.layers.0.mlp.up_proj.weight"), after.ReadFloat32("model.layers.0.mlp.up_proj.weight"));
    }
}
