using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;
using Qwen2VL.Runtime.Training;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Compiled;

/// <summary>
/// The KV cache in the compute dtype: with <c>--dtype bf16</c> (cpu device) keys and values are stored as bf16, as
/// transformers' bf16 path caches them. Held to the bf16 fixture README's rules against the f32 fixtures: greedy tokens
/// equal up to the first step whose f32 top-1/top-2 margin is below 0.03, and the step logits up to there within 5e-2
/// of max|expected|.
/// </summary>
public sealed class Bf16KvCacheTests(ITestOutputHelper log)
{
    private const double LogitsTolerance = 5e-2, MarginBelowWhichTokensMayDiffer = 0.03;

    [Theory]
    [InlineData("a_image_text")]
    [InlineData("b_batch2_two_images_leftpad")]
    [InlineData("c_video_text")]
    [InlineData("d_text_only")]
    public void GreedyGenerationWithABf16CacheMeetsTheBf16Tolerances(string caseName)
    {
        const int steps = 8;
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu, KernelOptions.Jit, bf16Weights: true);
        Assert.True(model.KvCacheBf16);
        var result = TextGenerator.Generate(model, golden.Inputs, new GenerationOptions(steps, SamplingOptions.Greedy, model.EosTokenIds, model.PadTokenId));

        int batch = golden.Inputs.Batch, vocab = model.Vocab;
        var expectedTokens = golden.Expected.ReadInt64("generated_new_tokens");                  // [B, 8]
        var expectedLogits = golden.Expected.ReadFloat32("generate_step_logits");                // [8, B, V]
        double scale = expectedLogits.Max(Math.Abs), worst = 0;
        for (int b = 0; b < batch; b++)
            for (int step = 0; step < steps; step++)
            {
                var expected = expectedLogits.AsSpan((step * batch + b) * vocab, vocab);
                var actual = result.StepLogits.AsSpan((step * batch + b) * vocab, vocab);
                double d = GoldenCase.MaxDiff(actual.ToArray(), expected);
                worst = Math.Max(worst, d / scale);
                Assert.True(d <= LogitsTolerance * scale, $"{caseName} row {b} step {step}: logits max |diff| {d:E3} > {LogitsTolerance} · {scale:F3}");
                if (Margin(expected) < MarginBelowWhichTokensMayDiffer)
                {
                    log.WriteLine($"row {b}: the f32 margin at step {step} is {Margin(expected):F4}; later steps may differ");
                    break; // this step's token may differ, and every later step then sees other tokens
                }
                Assert.Equal(expectedTokens[b * 8 + step], result.NewTokens[b * steps + step]);
            }
        log.WriteLine($"{caseName}: step logits within {worst:E2} of max|expected| (bf16 tolerance {LogitsTolerance})");
    }

    /// <summary>Top-1 minus top-2 logit.</summary>
    private static double Margin(ReadOnlySpan<float> logits)
    {
        float first = float.NegativeInfinity, second = float.NegativeInfinity;
        foreach (float z in logits)
            if (z > first) (first, second) = (z, first);
            else if (z > second) second = z;
        return first - second;
    }

    /// <summary>
    /// A bf16 cache holds exactly the bf16 rounding of what was appended, at half the bytes: attention over it equals
    /// attention over an f32 cache holding those rounded values up to summation order (the widening is exact).
    /// </summary>
    [Fact]
    public void ABf16CacheIsTheRoundedF32CacheAtHalfTheBytes()
    {
        const int batch = 2, capacity = 7, kvHeads = 2, heads = 4, headDim = 16, prompt = 5;
        using var ctx = ComputeContext.Create(DeviceKind.Cpu);
        using var f32 = new KvCache(ctx, batch, capacity, kvHeads, headDim);
        using var bf16 = new KvCache(ctx, batch, capacity, kvHeads, headDim, bf16: true);
        Assert.Equal(f32.Bytes, 2 * bf16.Bytes);
        var rng = new Random(12);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var mask = Enumerable.Repeat(1, batch * capacity).ToArray();
        mask[0] = 0; // a left-padded row
        using var maskT = ctx.UploadInt(mask, batch, capacity);
        foreach (int count in new[] { prompt, 1, 1 })
        {
            float[] k = Random(batch * count * kvHeads * headDim), v = Random(k.Length), q = Random(batch * count * heads * headDim);
            using var kT = ctx.Upload(k, batch, count, kvHeads, headDim);
            using var vT = ctx.Upload(v, batch, count, kvHeads, headDim);
            using var kRounded = ctx.Upload(k.Select(Bf16.Round).ToArray(), batch, count, kvHeads, headDim);
            using var vRounded = ctx.Upload(v.Select(Bf16.Round).ToArray(), batch, count, kvHeads, headDim);
            bf16.Append(0, kT, vT);
            f32.Append(0, kRounded, vRounded);
            using var qT = ctx.Upload(q, batch, count, heads, headDim);
            using var outF32 = ctx.Allocate(batch, count, heads, headDim);
            using var outBf16 = ctx.Allocate(batch, count, heads, headDim);
            int keys = f32.Length + count;
            ctx.AttentionCausalCached(qT, f32.Keys(0), f32.Values(0), outF32, maskT, batch, count, keys, capacity, heads, kvHeads, headDim, 0.25f);
            ctx.AttentionCausalCached(qT, bf16.Keys(0), bf16.Values(0), outBf16, maskT, batch, count, keys, capacity, heads, kvHeads, headDim, 0.25f);
            // Same values, only the summation order of the two CPU paths may differ.
            double d = GoldenCase.MaxDiff(ctx.Download(outBf16), ctx.Download(outF32));
            Assert.True(d <= 1e-5, $"bf16 cache attention vs f32 cache of the rounded values: max |diff| {d:E3}");
            f32.Advance(count);
            bf16.Advance(count);
        }
        using var ilgpu = ComputeContext.Create(DeviceKind.IlgpuCpu);
        Assert.Throws<ArgumentException>(() => new KvCache(ilgpu, 1, 2, 1, 4, bf16: true));
    }
}
