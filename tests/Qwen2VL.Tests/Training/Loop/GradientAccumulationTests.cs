using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training.Loop;

/// <summary>
/// Gradient accumulation (<c>train --accumulate N</c>): N micro-batches of b samples give the loss and gradients of one
/// batch of N·b samples, also when the micro-batches hold different numbers of label tokens.
/// </summary>
public sealed class GradientAccumulationTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-accum-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MicroBatchesGiveTheGradientsOfOneBigBatch(bool pack)
    {
        var (modelDir, data) = ShapesRecipe.Prepare(Path.Combine(_dir, "work"), samples: 6, seed: 21);
        var encoder = new SampleEncoder(Qwen2Tokenizer.Load(Path.Combine(modelDir, "tokenizer.json")),
            ImageProcessor.Load(Path.Combine(modelDir, "preprocessor_config.json")));
        var samples = TrainingJsonl.Read(data).Select(encoder.Encode).ToList();
        // Uneven label counts: the first two samples keep only their last label token, so a plain mean of the
        // micro-batch means would weight their tokens more than the big batch does.
        for (int i = 0; i < 2; i++)
        {
            var labels = (long[])samples[i].Labels.Clone();
            int last = Array.FindLastIndex(labels, l => l != EncodedSample.IgnoreIndex);
            for (int t = 0; t < last; t++) labels[t] = EncodedSample.IgnoreIndex;
            samples[i] = samples[i] with { Labels = labels };
        }
        using var model = Qwen2VLModel.Load(modelDir, DeviceKind.Cpu);
        long pad = model.PadTokenId ?? 0;
        var options = new TrainOptions { DataPath = "", OutDir = "", Pack = pack, MaxLength = 256 };

        using var big = model.CreateGradients();
        double bigLoss = Trainer.AccumulateGradients(model, big, [Trainer.MicroBatch(model, samples, options, pad)]);
        using var accumulated = model.CreateGradients();
        var micro = samples.Chunk(2).Select(c => Trainer.MicroBatch(model, c, options, pad)).ToList();
        Assert.NotEqual(Trainer.LabelTokens(micro[0].Inputs), Trainer.LabelTokens(micro[1].Inputs));
        double accumulatedLoss = Trainer.AccumulateGradients(model, accumulated, micro);

        Assert.True(Math.Abs(bigLoss - accumulatedLoss) <= 1e-5, $"loss {accumulatedLoss} accumulated vs {bigLoss} in one batch");
        Assert.Equal(big.Gradients.Keys.Order(), accumulated.Gradients.Keys.Order());
        double worst = 0;
        foreach (var (name, g) in big.Gradients)
        {
            var want = model.Context.Download(g);
            var got = model.Context.Download(accumulated.Gradients[name]);
            double tolerance = 1e-6 + 1e-4 * want.Max(Math.Abs);
            double diff = Compare.MaxAbsDiff(got, want, out int at);
            worst = Math.Max(worst, diff / tolerance);
            if (diff > tolerance)
                Assert.Fail($"{name}: max |diff| {diff:E3} at {at} (accumulated {got[at]}, one batch {want[at]}), tolerance {tolerance:E2}");
        }
        log.WriteLine($"pack {pack}: loss {accumulatedLoss} (one batch {bigLoss}); worst gradient diff/tolerance {worst:F3}");
    }
}
