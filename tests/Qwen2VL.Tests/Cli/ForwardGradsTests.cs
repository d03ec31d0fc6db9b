using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// <c>forward --grads</c> writes the loss and grad.&lt;name&gt; of every parameter, matching transformers, with and without
/// <c>--recompute</c> (selective activation checkpointing).
/// </summary>
public sealed class ForwardGradsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-grads-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("b_batch2_two_images_leftpad", false)]
    [InlineData("c_video_text", false)]
    [InlineData("a_image_text", true)]
    [InlineData("d_text_only", true)]
    public void WritesEveryGradientLikeTransformers(string caseName, bool recompute)
    {
        var output = Path.Combine(_dir, "out.safetensors");
        string[] args = ["forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case(caseName, "inputs.safetensors"), "--out", output, "--grads"];
        var r = CliRunner.Run(recompute ? [.. args, "--recompute"] : args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var actual = SafetensorsFile.Open(output);
        using var expected = SafetensorsFile.Open(FixturePaths.Case(caseName, "expected.safetensors"));
        Assert.True(Math.Abs(actual.ReadFloat32("loss")[0] - expected.ReadFloat32("loss")[0]) <= 1e-5);
        var names = expected.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(names);
        foreach (var name in names)
        {
            var want = expected.ReadFloat32(name);
            Assert.Equal(expected.Tensors[name].Shape, actual.Tensors[name].Shape);
            var tolerance = 1e-5 + 1e-3 * want.Max(Math.Abs);
            Compare.Close(name, actual.Tensors[name].Shape.Select(d => (int)d).ToArray(), actual.ReadFloat32(name), want, tolerance);
        }
    }

    /// <summary><c>--dtype bf16 --grads</c> through the CLI: loss and every gradient written (the numbers: Bf16ForwardGradsTests).</summary>
    [Fact]
    public void Bf16DtypeWritesTheLossAndEveryGradient()
    {
        var output = Path.Combine(_dir, "bf16.safetensors");
        var r = CliRunner.Run("forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case("a_image_text", "inputs.safetensors"),
            "--out", output, "--grads", "--dtype", "bf16");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var actual = SafetensorsFile.Open(output);
        using var expected = SafetensorsFile.Open(FixturePaths.Case("a_image_text", "expected.safetensors"));
        float want = expected.ReadFloat32("loss")[0];
        Assert.True(Math.Abs(actual.ReadFloat32("loss")[0] - want) <= 3e-3 * Math.Abs(want));
        foreach (var name in expected.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)))
            Assert.Equal(expected.Tensors[name].Shape, actual.Tensors[name].Shape);
    }

    [Theory]
    [InlineData("f16")]
    [InlineData("float32")]
    public void AnUnsupportedDtypeIsOneLineAndExitTwo(string dtype)
    {
        var output = Path.Combine(_dir, "o.safetensors");
        var r = CliRunner.Run("forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case("d_text_only", "inputs.safetensors"),
            "--out", output, "--grads", "--dtype", dtype);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--dtype must be bf16 or f32, got '{dtype}'", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void RecomputeWithoutGradsIsAnError()
    {
        var r = CliRunner.Run("forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case("d_text_only", "inputs.safetensors"),
            "--out", Path.Combine(_dir, "o.safetensors"), "--recompute");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--grads", r.Stderr);
    }

    [Fact]
    public void GradsWithoutLabelsIsAnError()
    {
        var inputs = Path.Combine(_dir, "nolabels.safetensors");
        SafetensorsWriter.Write(inputs, [SafetensorsEntry.I64("input_ids", [1, 2, 3], 1, 3)]);
        var r = CliRunner.Run("forward", "--model", FixturePaths.Root, "--inputs", inputs, "--out", Path.Combine(_dir, "o.safetensors"), "--grads");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("labels", r.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "o.safetensors")));
    }
}
