using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Compiled;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training;

/// <summary>
/// The generated backward passes of the whole model against the gradients transformers computed for the fixtures:
/// the loss within 1e-5 and every parameter's gradient (grad.&lt;name&gt;) within 1e-5 + 1e-3·max|expected|, with
/// selective activation checkpointing off and on; and recomputation changes no gradient and keeps fewer floats. This is
/// the path <c>train</c> uses: the lm_head fused with the loss, chunked over the vocabulary (chunk 0: the default, one
/// chunk for this vocabulary of 512; 100: six chunks, the last one partial).
/// </summary>
public sealed class GradientParityTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu, false)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu, false)]
    [InlineData("c_video_text", DeviceKind.Cpu, false)]
    [InlineData("d_text_only", DeviceKind.Cpu, false)]
    [InlineData("a_image_text", DeviceKind.IlgpuCpu, false, 100)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu, false, 100)]
    [InlineData("c_video_text", DeviceKind.Cpu, false, 100)]
    [InlineData("a_image_text", DeviceKind.Cpu, true)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu, true)]
    [InlineData("c_video_text", DeviceKind.Cpu, true, 100)]
    [InlineData("d_text_only", DeviceKind.Cpu, true)]
    [InlineData("a_image_text", DeviceKind.IlgpuCpu, true)]
    public void LossAndEveryGradientMatchTransformers(string caseName, DeviceKind device, bool recompute, int chunk = 0)
    {
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, device);
        model.LossChunkColumns = chunk;
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        using var grads = Declared(model, weights);

        model.Recompute = recompute;
        var result = model.ForwardBackward(golden.Inputs, grads);
        Assert.Equal(chunk == 0 ? model.Vocab : chunk, result.LogitsColumns);

        var expectedLoss = golden.Expected.ReadFloat32("loss")[0];
        Assert.True(Math.Abs(result.Loss - expectedLoss) <= 1e-5, $"loss {result.Loss} vs {expectedLoss}");
        var checkedCount = 0;
        var worst = 0.0;
        foreach (var name in weights.Names)
        {
            var key = "grad." + name;
            if (!golden.Expected.Tensors.ContainsKey(key))
            {
                // No path to the loss (the vision tower of a text-only case): no gradient, or an all-zero one.
                if (grads.Gradients.TryGetValue(name, out var none))
                    Assert.All(model.Context.Download(none), g => Assert.Equal(0f, g));
                continue;
            }
            Assert.True(grads.Gradients.ContainsKey(name), $"no gradient was computed for {name}");
            var expected = golden.Expected.ReadFloat32(key);
            var actual = model.Context.Download(grads.Gradients[name]);
            var scale = expected.Max(Math.Abs);
            var tolerance = 1e-5 + 1e-3 * scale;
            var diff = Compare.MaxAbsDiff(actual, expected, out var at);
            worst = Math.Max(worst, diff / tolerance);
            Assert.True(diff <= tolerance, $"{key} ({caseName}, {device}, recompute {recompute}, chunk {chunk}): max |diff| {diff:E3} at {at} (got {actual[at]}, expected {expected[at]}), tolerance {tolerance:E2}");
            checkedCount++;
        }
        Assert.True(checkedCount > 20, $"only {checkedCount} gradients were compared");
        log.WriteLine($"{caseName} ({device}, recompute {recompute}, chunk {chunk}): loss {result.Loss} vs {expectedLoss}; {checkedCount} gradients, worst diff/tolerance {worst:F3}");
    }

    /// <summary>
    /// Recomputed values come from the same kernels on the same kept inputs, so the loss and every gradient are
    /// bit-identical with recomputation on; the kept floats go down.
    /// </summary>
    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu)]
    [InlineData("c_video_text", DeviceKind.Cpu)]
    [InlineData("d_text_only", DeviceKind.Cpu)]
    public void RecomputeGivesIdenticalGradientsAndKeepsFewerFloats(string caseName, DeviceKind device)
    {
        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(FixturePaths.Root, device);
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        using var kept = Declared(model, weights);
        using var recomputed = Declared(model, weights);

        var plain = model.ForwardBackward(golden.Inputs, kept);
        var keptFloats = model.SavedActivationFloats(recompute: false);
        Assert.Equal(0, model.Context.TrainingWorkspaceFloats);
        model.Recompute = true;
        var again = model.ForwardBackward(golden.Inputs, recomputed);
        var fewerFloats = model.SavedActivationFloats(recompute: true);
        var workspace = model.Context.TrainingWorkspaceFloats;

        Assert.Equal(plain.Loss, again.Loss);
        Assert.Equal(kept.Gradients.Keys.Order(), recomputed.Gradients.Keys.Order());
        foreach (var (name, tensor) in kept.Gradients)
        {
            var a = model.Context.Download(tensor);
            var b = model.Context.Download(recomputed.Gradients[name]);
            var diff = Compare.MaxAbsDiff(b, a, out var at);
            if (diff != 0)
                Assert.Fail($"grad.{name} ({caseName}, {device}): recomputation changed it by {diff:E3} at {at} ({b[at]} vs {a[at]})");
        }
        Assert.Equal(keptFloats, model.SavedActivationFloats(recompute: false));
        Assert.True(fewerFloats < keptFloats, $"{caseName}: {fewerFloats} kept floats with recomputation, {keptFloats} without");
        Assert.True(workspace > 0 && workspace < keptFloats - fewerFloats,
            $"{caseName}: the shared recompute workspace ({workspace} floats) should be smaller than the saving ({keptFloats - fewerFloats})");
        log.WriteLine($"{caseName} ({device}): saved activations {keptFloats} floats ({keptFloats * 4} bytes) without recomputation, "
            + $"{fewerFloats} ({fewerFloats * 4} bytes, {100.0 * fewerFloats / keptFloats:F1}%) with, plus a shared workspace of {workspace} floats");
    }

    private static GradientMap Declared(Qwen2VLModel model, WeightStore weights)
    {
        var grads = new GradientMap(model.Context);
        foreach (var name in weights.Names)
            grads.Declare(name, weights.Info(name).Shape.Select(d => (int)d).ToArray());
        return grads;
    }
}
