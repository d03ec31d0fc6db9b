using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Training.Loop;

/// <summary><c>train --bf16</c>: the loss falls with bf16 compute weights, and checkpoints hold the f32 master weights.</summary>
public sealed class Bf16TrainingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-bf16-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void LossFallsAndTheCheckpointSavesTheF32Masters()
    {
        var (model, data) = ShapesRecipe.Prepare(Path.Combine(_dir, "work"), samples: 32, seed: 3);
        var outDir = Path.Combine(_dir, "run");
        Trainer.Run(model, new TrainOptions
        {
            DataPath = data, OutDir = outDir, MaxSteps = 16, BatchSize = 4, LearningRate = 3e-3f, WarmupSteps = 2, Seed = 5, Bf16 = true,
        });
        var rows = LossLog.Read(Path.Combine(outDir, "loss.csv"));
        Assert.Equal(16, rows.Count);
        Assert.True(rows.TakeLast(4).Average(r => r.Loss) < 0.8 * rows.Take(4).Average(r => r.Loss),
            $"loss went from {rows.Take(4).Average(r => r.Loss):F3} to {rows.TakeLast(4).Average(r => r.Loss):F3}");

        // The saved weights are the masters: most trained values are not bf16-representable. Loaded again with bf16
        // compute, the masters are those exact values and the compute weights their rounding.
        var checkpoint = TrainingCheckpoint.LatestPath(outDir)!;
        using var saved = SafetensorsFile.Open(Path.Combine(checkpoint, "model.safetensors"));
        var up = saved.ReadFloat32("model.layers.0.mlp.up_proj.weight");
        Assert.True(up.Count(x => Bf16.Round(x) != x) > up.Length / 2, "the checkpoint holds bf16-rounded weights, not the f32 masters");
        using var reloaded = Qwen2VLModel.LoadForTraining(checkpoint, DeviceKind.Cpu, [], bf16Compute: true);
        var parameters = reloaded.Parameters!;
        Assert.Equal(up, reloaded.Context.Download(parameters.Weight("model.layers.0.mlp.up_proj.weight")));
        var compute = parameters.ComputeWeight("model.layers.0.mlp.up_proj.weight");
        Assert.True(compute.IsBf16);
        Assert.Equal(up.Select(Bf16.RoundBits).ToArray(), reloaded.Context.DownloadBf16(compute));

        // The passes read the compute weights: bf16 numerics change the loss a little, and clearing the masters changes nothing.
        var encoder = new SampleEncoder(Qwen2Tokenizer.Load(Path.Combine(checkpoint, "tokenizer.json")),
            ImageProcessor.Load(Path.Combine(checkpoint, "preprocessor_config.json")));
        var samples = TrainingJsonl.Read(data).Take(4).Select(encoder.Encode).ToList();
        var inputs = Batching.Collate(samples, PadSide.Right, reloaded.PadTokenId ?? 0);
        using var f32 = Qwen2VLModel.LoadForTraining(checkpoint, DeviceKind.Cpu, []);
        using var f32Grads = f32.CreateGradients();
        using var bf16Grads = reloaded.CreateGradients();
        float lossF32 = f32.ForwardBackward(inputs, f32Grads).Loss, lossBf16 = reloaded.ForwardBackward(inputs, bf16Grads).Loss;
        Assert.NotEqual(lossF32, lossBf16);
        Assert.True(Math.Abs(lossF32 - lossBf16) < 0.05 * lossF32, $"bf16 loss {lossBf16} vs f32 {lossF32}");
        reloaded.Context.Clear(parameters.AllWeights);
        using var again = reloaded.CreateGradients();
        Assert.Equal(lossBf16, reloaded.ForwardBackward(inputs, again).Loss);
    }
}
