using Qwen2VL.Runtime.Aot;
using Qwen2VL.Tests.Aot;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// <c>--kernels DIR</c> and <c>--no-jit</c> on <c>forward</c> and <c>generate</c> as a user runs them: a fresh build
/// is checked and accepted on the cpu device; a stale, corrupt or missing one is one line on stderr and exit code 2
/// before anything runs; <c>--no-jit</c> is refused where it cannot hold.
/// </summary>
[Collection(CompiledModelCollection.Name)]
public sealed class KernelFlagsTests(CompiledModel build)
{
    [Fact]
    public void FreshBuild_IsCheckedAndTheEmbeddedExampleStillMatches()
    {
        var r = CliRunner.Run("forward", "--kernels", build.BuildDir, "--no-jit");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains($"kernels: {build.BuildDir} checked (sm_80, sm_90); not used on the cpu device", r.Stderr);
        Assert.Contains("All outputs match.", r.Stdout);
    }

    [Fact]
    public void StaleManifest_IsExitCode2_WithOneLineNamingTheModule()
    {
        using var dir = new TempDirectory();
        var copy = Copy(dir.Path);
        var manifest = Path.Combine(copy, PtxManifest.FileName);
        var hash = build.Manifest!.Modules.Single(m => m.Name == "Kernels").GeneratedCodeHash;
        var stale = (hash[0] == '0' ? "1" : "0") + hash[1..];
        File.WriteAllText(manifest, File.ReadAllText(manifest).Replace(hash, stale));

        foreach (var command in new[] { "forward", "generate" })
        {
            var r = CliRunner.Run(command, "--kernels", copy);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal($"error: PTX manifest is stale: module Kernels was compiled from generated-code hash {stale}, the current hash is {hash}; recompile with qwen2vl compile",
                LastLine(r.Stderr)); // generate first says which embedded model and image it uses
            Assert.DoesNotContain("   at ", r.Stderr);
            Assert.Equal("", r.Stdout);
        }
    }

    [Fact]
    public void CorruptManifest_IsExitCode2_WithOneLine()
    {
        using var dir = new TempDirectory();
        var copy = Copy(dir.Path);
        File.WriteAllText(Path.Combine(copy, PtxManifest.FileName), "{\"format\": 2, \"kernels\": [");
        var r = CliRunner.Run("forward", "--kernels", copy);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith($"error: {Path.Combine(copy, PtxManifest.FileName)} is not valid JSON", r.Stderr);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
    }

    [Theory]
    [InlineData("error: --kernels folder not found: /no/such/kernels", "forward", "--kernels", "/no/such/kernels")]
    [InlineData("error: --no-jit: the ilgpu-cpu device compiles every kernel from IL at run time; use --device cuda (with --kernels) or cpu", "forward", "--device", "ilgpu-cpu", "--no-jit")]
    [InlineData("error: --no-jit: the ilgpu-cpu device compiles every kernel from IL at run time; use --device cuda (with --kernels) or cpu", "generate", "--device", "ilgpu-cpu", "--no-jit")]
    public void BadKernelOptions_AreExitCode2_WithOneLine(string expected, params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal(expected, LastLine(r.Stderr));
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    private static string LastLine(string text) => text.TrimEnd().Split('\n')[^1];

    private string Copy(string root)
    {
        var copy = Path.Combine(root, "kernels");
        foreach (var file in Directory.GetFiles(build.BuildDir, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(copy, Path.GetRelativePath(build.BuildDir, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        return copy;
    }
}
