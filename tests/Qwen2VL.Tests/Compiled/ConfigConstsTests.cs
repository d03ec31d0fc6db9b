using System.Text.Json.Nodes;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Qwen2VL.Tests.Reference;
using Qwen2VL.Tests.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Compiled;

/// <summary>
/// The tiny fixture model under a config with rope_theta = 10 and rms_norm_eps = 1e-5 (the decoder's [Const]s, away
/// from their defaults 1e6 and 1e-6): the generated runners (forward, and generation through the KV-cache Forward)
/// against the float64 reference model loaded from the same folder, to the fixtures' 1e-4. The logits also move away
/// from the fixture config's, so a value that did not reach the kernels would fail here.
/// </summary>
public sealed class ConfigConstsTests(ITestOutputHelper log) : IDisposable
{
    private const double Atol = 1e-4;
    private readonly TempDirectory _dir = WriteModel();

    public void Dispose() => _dir.Dispose();

    private static TempDirectory WriteModel()
    {
        var dir = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(FixturePaths.Config))!.AsObject();
        config["rope_theta"] = 10.0;
        config["rms_norm_eps"] = 1e-5;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        File.Copy(FixturePaths.Model, dir.File("model.safetensors"));
        return dir;
    }

    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu)]
    [InlineData("a_image_text", DeviceKind.IlgpuCpu)]
    public void ForwardMatchesTheReferenceUnderTheSameConfig(string caseName, DeviceKind device)
    {
        var c = new FixtureCase(Path.Combine(FixturePaths.Root, "cases", caseName));
        var reference = ReferenceModel.Load(_dir.Path);
        Assert.Equal((10f, 1e-5f), (reference.Layers[0].RopeTheta, reference.Layers[0].Eps));
        Assert.Equal(1e-5f, reference.NormEps);
        var want = reference.Forward(c.InputIds, c.AttentionMask, c.Batch, c.Seq, c.Images, c.Videos).Logits.Data
            .Select(v => (float)v).ToArray();

        using var golden = new GoldenCase(caseName);
        using var model = Qwen2VLModel.Load(_dir.Path, device);
        var got = model.Forward(golden.Inputs);
        double d = golden.MaskedMaxDiff(got.Logits, want, model.Vocab);
        log.WriteLine($"logits vs reference (rope_theta 10, rms_norm_eps 1e-5): max |diff| {d:E2}");
        Assert.True(d <= Atol, $"logits ({caseName}, {device}): max |diff| {d:E3} against the reference under the same config");

        double moved = golden.MaskedMaxDiff(got.Logits, golden.Expected.ReadFloat32("logits"), model.Vocab);
        log.WriteLine($"logits vs the fixture config's: max |diff| {moved:E2}");
        Assert.True(moved > 100 * Atol, $"logits ({caseName}): rope_theta / rms_norm_eps changed the logits by only {moved:E3}");
    }

    /// <summary>v5 layout: text_config with rope_theta inside rope_parameters; both models must find it there.</summary>
    [Fact]
    public void RopeThetaInsideV5RopeParametersIsRead()
    {
        using var dir = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(_dir.File("config.json")))!.AsObject();
        var rope = config["rope_scaling"]!.DeepClone().AsObject();
        rope["rope_theta"] = config["rope_theta"]!.DeepClone();
        config.Remove("rope_scaling");
        config.Remove("rope_theta");
        config["text_config"] = new JsonObject { ["rope_parameters"] = rope };
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        File.Copy(FixturePaths.Model, dir.File("model.safetensors"));

        Assert.Equal(10f, ReferenceModel.Load(dir.Path).Layers[0].RopeTheta);
        using var golden = new GoldenCase("a_image_text");
        using var flat = Qwen2VLModel.Load(_dir.Path, DeviceKind.Cpu);
        using var v5 = Qwen2VLModel.Load(dir.Path, DeviceKind.Cpu);
        Assert.Equal(flat.Forward(golden.Inputs).Logits, v5.Forward(golden.Inputs).Logits);
    }

    [Fact]
    public void CachedGenerationMatchesTheReferenceUnderTheSameConfig()
    {
        const int steps = 4;
        var c = new FixtureCase(Path.Combine(FixturePaths.Root, "cases", "a_image_text"));
        var reference = ReferenceModel.Load(_dir.Path);
        using var golden = new GoldenCase("a_image_text");
        using var model = Qwen2VLModel.Load(_dir.Path, DeviceKind.Cpu);
        var options = new GenerationOptions(steps, SamplingOptions.Greedy, model.EosTokenIds, model.PadTokenId);
        var got = TextGenerator.Generate(model, golden.Inputs, options);
        var want = reference.Generate(c.InputIds, c.AttentionMask, c.Batch, c.Seq, steps, c.Images, c.Videos,
            eosTokenId: model.EosTokenIds.Count > 0 ? model.EosTokenIds[0] : null, padTokenId: model.PadTokenId);

        Assert.Equal(want.Steps, got.Steps);
        Assert.Equal(want.NewTokens, got.NewTokens);
        double d = GoldenCase.MaxDiff(got.StepLogits, want.StepLogits.Select(v => (float)v).ToArray());
        log.WriteLine($"step logits vs reference: max |diff| {d:E2}");
        Assert.True(d <= Atol, $"step logits: max |diff| {d:E3} against the reference under the same config");
    }
}
