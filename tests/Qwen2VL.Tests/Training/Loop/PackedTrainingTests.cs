using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training.Loop;

/// <summary>
/// Packed training (<c>train --pack</c>): samples laid end to end in one row, each its own attention segment with its
/// own M-RoPE positions, give the loss and gradients of the same samples unpacked, and of each sample alone.
/// </summary>
public sealed class PackedTrainingTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-pack-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (string Model, string Data, List<EncodedSample> Samples) Prepare(int count)
    {
        var (model, data) = ShapesRecipe.Prepare(Path.Combine(_dir, "work"), samples: count, seed: 11);
        var encoder = new SampleEncoder(Qwen2Tokenizer.Load(Path.Combine(model, "tokenizer.json")),
            ImageProcessor.Load(Path.Combine(model, "preprocessor_config.json")));
        return (model, data, TrainingJsonl.Read(data).Select(encoder.Encode).ToList());
    }

    [Fact]
    public void PackedBatchHasTheLossAndGradientsOfTheSamplesUnpackedAndAlone()
    {
        var (modelDir, _, samples) = Prepare(5);
        using var model = Qwen2VLModel.Load(modelDir, DeviceKind.Cpu);
        long pad = model.PadTokenId ?? 0;
        var options = new TrainOptions { DataPath = "", OutDir = "", Pack = true, MaxLength = 2 * samples.Max(s => s.Length) + 1 };

        var (packed, positions) = Trainer.MicroBatch(model, samples, options, pad);
        Assert.True(packed.Batch < samples.Count, $"{samples.Count} samples packed into {packed.Batch} rows");
        using var packedGrads = model.CreateGradients();
        var packedLoss = model.ForwardBackward(packed, packedGrads, positions);

        var (padded, none) = Trainer.MicroBatch(model, samples, options with { Pack = false }, pad);
        Assert.Null(none);
        Assert.Equal(samples.Count, padded.Batch);
        using var paddedGrads = model.CreateGradients();
        var paddedLoss = model.ForwardBackward(padded, paddedGrads);

        // Each sample alone, its gradient weighted by its share of the label tokens: the sum is the gradient of the mean.
        using var aloneGrads = model.CreateGradients();
        double lossSum = 0;
        int tokens = 0;
        int total = samples.Sum(s => s.Labels.Skip(1).Count(l => l != EncodedSample.IgnoreIndex));
        foreach (var s in samples)
        {
            var (inputs, _) = Trainer.MicroBatch(model, [s], options with { Pack = false }, pad);
            int count = s.Labels.Skip(1).Count(l => l != EncodedSample.IgnoreIndex);
            var alone = model.ForwardBackward(inputs, aloneGrads, gradScale: (float)count / total);
            Assert.Equal(count, alone.Tokens);
            lossSum += (double)alone.Loss * alone.Tokens;
            tokens += alone.Tokens;
        }

        Assert.Equal(total, packedLoss.Tokens);
        Assert.Equal(total, paddedLoss.Tokens);
        Assert.True(Math.Abs(packedLoss.Loss - paddedLoss.Loss) <= 1e-5, $"packed loss {packedLoss.Loss} vs padded {paddedLoss.Loss}");
        Assert.True(Math.Abs(packedLoss.Loss * (double)total - lossSum) <= 1e-5 * total,
            $"packed loss × tokens {packedLoss.Loss * total} vs the samples' sum {lossSum}");
        double worst = Math.Max(SameGradients(model, packedGrads, paddedGrads, "padded"), SameGradients(model, packedGrads, aloneGrads, "alone"));
        log.WriteLine($"{samples.Count} samples in {packed.Batch} packed rows of {packed.Seq}: loss {packedLoss.Loss} (padded {paddedLoss.Loss}, " +
            $"alone {lossSum / tokens}); worst gradient diff/tolerance {worst:F3}");
    }

    private static double SameGradients(Qwen2VLModel model, GradientMap expected, GradientMap actual, string what)
    {
        Assert.Equal(expected.Gradients.Keys.Order(), actual.Gradients.Keys.Order());
        double worst = 0;
        foreach (var (name, g) in expected.Gradients)
        {
            var want = model.Context.Download(g);
            var got = model.Context.Download(actual.Gradients[name]);
            double tolerance = 1e-6 + 1e-4 * want.Max(Math.Abs);
            double diff = Compare.MaxAbsDiff(got, want, out int at);
            worst = Math.Max(worst, diff / tolerance);
            if (diff > tolerance)
                Assert.Fail($"{name} ({what} vs packed): max |diff| {diff:E3} at {at} ({got[at]} vs {want[at]}), tolerance {tolerance:E2}");
        }
        return worst;
    }

    [Fact]
    public void ShortPackedRunTrains()
    {
        var (model, data, _) = Prepare(24);
        var outDir = Path.Combine(_dir, "run");
        long total = 0;
        Trainer.Run(model, new TrainOptions
        {
            DataPath = data, OutDir = outDir, Epochs = 2, BatchSize = 6, LearningRate = 3e-3f, WarmupSteps = 1, Seed = 2, Pack = true, MaxLength = 160,
        }, started: (_, t) => total = t);
        Assert.Equal(8, total); // 2 epochs × 24 / 6, known before the first step
        var rows = LossLog.Read(Path.Combine(outDir, "loss.csv"));
        Assert.Equal(8, rows.Count);
        Assert.All(rows, r => Assert.True(double.IsFinite(r.Loss)));
        Assert.True(rows.TakeLast(2).Average(r => r.Loss) < rows.Take(2).Average(r => r.Loss),
            $"loss went from {rows.Take(2).Average(r => r.Loss):F3} to {rows.TakeLast(2).Average(r => r.Loss):F3}");
    }
}
