using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Qwen2VL.Tests.Compiled;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training;

/// <summary>
/// The training loss path: the lm_head fused with the cross-entropy, chunked over the vocabulary, against the
/// reference path that makes the full [B·S, V] logits (<see cref="Qwen2VLModel.FullLogitsLoss"/>). Same loss and
/// gradients; the fused path's logits buffer is one chunk wide.
/// </summary>
public sealed class FusedHeadLossTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("b_batch2_two_images_leftpad", 100)]
    [InlineData("d_text_only", 7)]
    [InlineData("a_image_text", 0)]
    public void ChunkedLossAndGradientsEqualTheFullLogitsPath(string caseName, int chunk)
    {
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        using var full = model.CreateGradients();
        model.FullLogitsLoss = true;
        var reference = model.ForwardBackward(golden.Inputs, full);
        using var fused = model.CreateGradients();
        model.FullLogitsLoss = false;
        model.LossChunkColumns = chunk;
        var result = model.ForwardBackward(golden.Inputs, fused);

        Assert.Equal(model.Vocab, reference.LogitsColumns);
        int expectedColumns = chunk == 0 ? LmHeadCrossEntropy.ChunkColumns(golden.Inputs.Batch * golden.Inputs.Seq, model.Vocab) : chunk;
        Assert.Equal(expectedColumns, result.LogitsColumns);
        Assert.Equal(reference.Tokens, result.Tokens);
        Assert.True(Math.Abs(result.Loss - reference.Loss) <= 1e-6 * Math.Max(1, Math.Abs(reference.Loss)), $"loss {result.Loss} vs {reference.Loss}");
        Assert.Equal(full.Gradients.Keys.Order(), fused.Gradients.Keys.Order());
        double worst = 0;
        foreach (var (name, g) in full.Gradients)
        {
            var expected = model.Context.Download(g);
            var actual = model.Context.Download(fused.Gradients[name]);
            double tolerance = 1e-6 + 1e-4 * expected.Max(Math.Abs);
            double diff = Compare.MaxAbsDiff(actual, expected, out int at);
            worst = Math.Max(worst, diff / tolerance);
            if (diff > tolerance)
                Assert.Fail($"{name}: max |diff| {diff:E3} at {at} (fused {actual[at]}, full {expected[at]}), tolerance {tolerance:E2}");
        }
        log.WriteLine($"{caseName}, chunk {result.LogitsColumns} of {model.Vocab}: loss {result.Loss} vs {reference.Loss}; worst diff/tolerance {worst:F3}");
    }

    [Fact]
    public void TheDefaultChunkOfARealVocabularyStaysWithinItsBudget()
    {
        // Qwen2-VL's vocabulary of 151,936 with 8 rows of 4096 tokens: the full f32 logits would be 19.9 GB; one chunk is ≤ 64 MiB.
        const int rows = 8 * 4096, vocab = 151_936;
        int columns = LmHeadCrossEntropy.ChunkColumns(rows, vocab);
        Assert.True(columns < vocab, $"{columns} columns");
        Assert.True((long)rows * columns <= LmHeadCrossEntropy.ChunkBudgetFloats, $"{rows} × {columns} floats");
        Assert.Equal(64L << 20, LmHeadCrossEntropy.ChunkBudgetFloats * 4L);
        // A short batch takes the whole vocabulary in as few chunks as the budget allows.
        Assert.Equal(vocab, LmHeadCrossEntropy.ChunkColumns(64, vocab));
    }

    [Fact]
    public void FrozenHeadGetsNoGradientButTheLayersBelowDo()
    {
        using var golden = new GoldenCase("d_text_only");
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        using var grads = model.CreateGradients(name => name != "lm_head.weight");
        model.LossChunkColumns = 50;
        var result = model.ForwardBackward(golden.Inputs, grads);
        Assert.True(float.IsFinite(result.Loss));
        Assert.False(grads.Gradients.ContainsKey("lm_head.weight"));
        Assert.Contains(model.Context.Download(grads.Gradients["model.norm.weight"]), g => g != 0);
    }
}
