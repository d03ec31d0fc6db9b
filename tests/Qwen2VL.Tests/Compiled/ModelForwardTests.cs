using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Compiled;

/// <summary>
/// The whole model on the generated runners against transformers, per golden case: positions and rope deltas
/// exactly; vision embeddings, every hidden_states entry and the logits within 1e-4 where attention_mask is 1; the
/// loss within 1e-5 (case b's loss counts the prediction made at its last padding position, so it also checks the
/// fully-masked-row attention semantics).
/// </summary>
public sealed class ModelForwardTests(ITestOutputHelper log)
{
    private const double Atol = 1e-4, LossAtol = 1e-5;

    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu)]
    [InlineData("c_video_text", DeviceKind.Cpu)]
    [InlineData("d_text_only", DeviceKind.Cpu)]
    [InlineData("a_image_text", DeviceKind.IlgpuCpu)]
    public void ForwardMatchesTransformers(string caseName, DeviceKind device)
    {
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, device);
        var output = model.Forward(golden.Inputs);
        var expected = golden.Expected;

        Assert.Equal(expected.ReadInt64("position_ids"), output.PositionIds);
        Assert.Equal(expected.ReadInt64("rope_deltas"), output.RopeDeltas);
        foreach (var (name, actual) in new[] { ("image_embeds", output.ImageEmbeds), ("video_embeds", output.VideoEmbeds) })
        {
            Assert.Equal(expected.Tensors.ContainsKey(name), actual is not null);
            if (actual is null) continue;
            double d = GoldenCase.MaxDiff(actual, expected.ReadFloat32(name));
            log.WriteLine($"{name}: max |diff| {d:E2}");
            Assert.True(d <= Atol, $"{name} ({caseName}, {device}): max |diff| {d:E3}");
        }

        var hidden = expected.ReadFloat32("hidden_states");
        int layerSize = output.Batch * output.Seq * output.Hidden;
        Assert.Equal(hidden.Length / layerSize, output.HiddenStates.Count);
        for (int k = 0; k < output.HiddenStates.Count; k++)
        {
            double d = golden.MaskedMaxDiff(output.HiddenStates[k], hidden.AsSpan(k * layerSize, layerSize), output.Hidden);
            log.WriteLine($"hidden_states[{k}]: max |diff| {d:E2}");
            Assert.True(d <= Atol, $"hidden_states[{k}] ({caseName}, {device}): max |diff| {d:E3}");
        }
        double logits = golden.MaskedMaxDiff(output.Logits, expected.ReadFloat32("logits"), output.Vocab);
        log.WriteLine($"logits: max |diff| {logits:E2}");
        Assert.True(logits <= Atol, $"logits ({caseName}, {device}): max |diff| {logits:E3}");

        double loss = Math.Abs(output.Loss!.Value - expected.ReadFloat32("loss")[0]);
        log.WriteLine($"loss: {output.Loss:R}, |diff| {loss:E2}");
        Assert.True(loss <= LossAtol, $"loss ({caseName}, {device}): {output.Loss} vs {expected.ReadFloat32("loss")[0]}");
    }

    [Fact]
    public void WithoutLabelsThereIsNoLoss()
    {
        using var golden = new GoldenCase("d_text_only");
        using var model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        Assert.Null(model.Forward(golden.Inputs with { Labels = null }).Loss);
    }
}
