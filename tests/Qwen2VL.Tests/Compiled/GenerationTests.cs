using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Compiled;

/// <summary>
/// Greedy generation (by recomputation, no KV cache) against transformers' <c>generate(max_new_tokens=8)</c> with
/// a KV cache: the same 8 new ids, each step's logits within 1e-4, and the decode-step positions of the recompute
/// layout equal to the positions transformers fed its cached decode steps.
/// </summary>
public sealed class GenerationTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu)]
    [InlineData("c_video_text", DeviceKind.Cpu)]
    [InlineData("d_text_only", DeviceKind.Cpu)]
    [InlineData("a_image_text", DeviceKind.IlgpuCpu)]
    public void GreedyGenerationMatchesTransformers(string caseName, DeviceKind device)
    {
        // All 8 steps on both devices: with the KV cache each decode step runs one token (slow but bounded on ILGPU's
        // CPU simulator).
        int steps = 8;
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, device);
        var options = new GenerationOptions(steps, SamplingOptions.Greedy, model.EosTokenIds, model.PadTokenId);
        var result = TextGenerator.Generate(model, golden.Inputs, options);

        int batch = golden.Inputs.Batch, vocab = model.Vocab;
        var expectedTokens = golden.Expected.ReadInt64("generated_new_tokens");                  // [B, 8]
        Assert.Equal(steps, result.Steps);
        for (int b = 0; b < batch; b++)
            Assert.Equal(expectedTokens.AsSpan(b * 8, steps).ToArray(), result.NewTokens.AsSpan(b * steps, steps).ToArray());
        var expectedLogits = golden.Expected.ReadFloat32("generate_step_logits").AsSpan(0, steps * batch * vocab); // [steps, B, V]
        double d = GoldenCase.MaxDiff(result.StepLogits, expectedLogits);
        log.WriteLine($"generate_step_logits: max |diff| {d:E2}");
        Assert.True(d <= 1e-4, $"generate_step_logits ({caseName}, {device}): max |diff| {d:E3}");
    }

    [Theory]
    [InlineData("a_image_text")]
    [InlineData("b_batch2_two_images_leftpad")]
    [InlineData("c_video_text")]
    public void PositionsOfNewTokensAreTransformersDecodePositions(string caseName)
    {
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        var prompt = model.Embed(golden.Inputs);
        int b = prompt.Batch;
        var decode = golden.Expected.ReadInt64("generate_decode_position_ids");                  // [7, 3, B, 1]
        // Decode step k (1..7) feeds the token generated at step k-1.
        for (int step = 0; step < 7; step++)
        {
            var pos = TextGenerator.DecodePositions(prompt, step);                               // [3, B, 1]
            Assert.Equal(decode.AsSpan(step * 3 * b, 3 * b).ToArray(), pos);
        }
    }

    [Fact]
    public void RowsStopAtEosAndThenRepeatThePadId()
    {
        using var golden = new GoldenCase("b_batch2_two_images_leftpad");
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        var expected = golden.Expected.ReadInt64("generated_new_tokens");                        // [2, 8]
        // Declare row 0's third greedy token an end-of-sequence id: row 0 then pads, row 1 goes on unchanged.
        long eos = expected[2];
        Assert.DoesNotContain(eos, expected.AsSpan(8, 8).ToArray());
        var result = TextGenerator.Generate(model, golden.Inputs, new GenerationOptions(8, SamplingOptions.Greedy, [eos], 505));
        Assert.Equal(8, result.Steps);
        Assert.Equal([expected[0], expected[1], eos, 505, 505, 505, 505, 505], result.NewTokens.AsSpan(0, 8).ToArray());
        Assert.Equal(expected.AsSpan(8, 8).ToArray(), result.NewTokens.AsSpan(8, 8).ToArray());

        // Once every row has ended, generation stops early.
        var single = TextGenerator.Generate(model, golden.Inputs, new GenerationOptions(8, SamplingOptions.Greedy, [expected[0], expected[8]], 505));
        Assert.Equal(1, single.Steps);
    }

    [Fact]
    public void StreamingCallbackSeesEachStepsTokens()
    {
        using var golden = new GoldenCase("d_text_only");
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        var seen = new List<long>();
        var result = TextGenerator.Generate(model, golden.Inputs, new GenerationOptions(4, SamplingOptions.Greedy, [], null),
            (step, tokens) => { Assert.Equal(seen.Count, step); seen.Add(tokens[0]); });
        Assert.Equal(result.NewTokens, seen);
        Assert.Equal(golden.Expected.ReadInt64("generated_new_tokens")[..4], seen);
    }
}
