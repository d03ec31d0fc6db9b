using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary><c>qwen2vl compile</c> input errors: one line on stderr, exit code 2, nothing written.</summary>
public sealed class CompileCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-aotcli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("unknown architecture 'sm_70': supported are sm_80, sm_90", "compile", "--arch", "sm_70", "--out", "{out}")]
    [InlineData("unknown architecture 'SM_80'", "compile", "--arch", "sm_80", "--arch", "SM_80", "--out", "{out}")]
    [InlineData("--out DIR is required", "compile", "--arch", "sm_80")]
    [InlineData("--arch is required", "compile", "--out", "{out}")]
    [InlineData("give --model or --config, not both", "compile", "--arch", "sm_80", "--config", "tiny", "--model", "{dir}", "--out", "{out}")]
    [InlineData("unknown config '3b': built-in configs are tiny, 2b, 7b, 72b", "compile", "--arch", "sm_80", "--config", "3b", "--out", "{out}")]
    [InlineData("has no config.json", "compile", "--arch", "sm_80", "--model", "{dir}", "--out", "{out}")]
    public void BadInput_IsOneLineAndExitCode2_AndWritesNothing(string expected, params string[] args)
    {
        var output = Path.Combine(_dir, "out");
        var (code, stdout, stderr) = Cli.Run(args.Select(a => a.Replace("{out}", output).Replace("{dir}", _dir)).ToArray());
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n'));
        Assert.False(Directory.Exists(output));
        Assert.Empty(Directory.GetDirectories(_dir)); // no temp folder left behind
    }

    [Fact]
    public void NonEmptyFolderWithoutManifest_IsRefusedAndLeftAlone()
    {
        var output = Path.Combine(_dir, "mine");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "keep me");
        var (code, _, stderr) = Cli.Run("compile", "--arch", "sm_80", "--out", output);
        Assert.Equal(2, code);
        Assert.Contains("is not empty and holds no manifest.json", stderr);
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
        Assert.Equal([output], Directory.GetDirectories(_dir));
    }

    [Fact]
    public void PreviousBuild_IsReplacedWhole()
    {
        var output = Path.Combine(_dir, "build");
        Directory.CreateDirectory(Path.Combine(output, "sm_90"));
        File.WriteAllText(Path.Combine(output, "manifest.json"), "{}");
        File.WriteAllText(Path.Combine(output, "sm_90", "Old.Kernel.ptx"), "old");
        var (code, _, stderr) = Cli.Run("compile", "--arch", "sm_80", "--out", output, "--model", WriteModel());
        Assert.True(code == 0, stderr);
        Assert.Equal(["manifest.json", "sm_80"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var manifest = Qwen2VL.Runtime.Aot.PtxManifest.Load(output);
        Assert.Equal("model", manifest.Config!.Name);
        Assert.Equal(40, manifest.Config.Dims.Single(d => d.Module == "VisionBlock").Values.ToDictionary()["Embed"]);
        Assert.Equal(10f, manifest.Config.Consts.Single(c => c.Module == "DecoderLayer").Values.ToDictionary()["RopeTheta"]);
        Assert.Equal(2, Directory.GetDirectories(_dir).Length); // build and model; no temp or old copies left
    }

    private string WriteModel()
    {
        var model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        var json = Qwen2VL.Runtime.Aot.BuiltInConfigs.Get("tiny").Replace("\"embed_dim\": 32", "\"embed_dim\": 40")
            .Replace("\"rope_theta\": 1000000.0", "\"rope_theta\": 10.0");
        Assert.Contains("\"rope_theta\": 10.0", json);
        File.WriteAllText(Path.Combine(model, "config.json"), json);
        return model;
    }
}
