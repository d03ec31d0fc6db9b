using System.Runtime.CompilerServices;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// Every file the generator emits for the real model modules and for small DSL samples (kernels in both forms, the
/// host runner, the pass dump) is compared with a checked-in baseline under Generator/Baselines/. A mismatch writes
/// a <c>.received.cs</c> file beside the baseline and fails. To accept intended changes, run
/// <c>QVL_UPDATE_BASELINES=1 dotnet test tests/Qwen2VL.Tests --filter FullyQualifiedName~BaselineTests</c>.
/// </summary>
public sealed class BaselineTests
{
    [Fact]
    public void VisionBlock() => Check("VisionBlock", GeneratorHarness.RepoSource("models/qwen2vl/Vision/VisionBlock.cs"));

    [Fact]
    public void DecoderLayer() => Check("DecoderLayer", GeneratorHarness.RepoSource("models/qwen2vl/Decoder/DecoderLayer.cs"));

    [Fact]
    public void VisionTower() => Check("VisionTower", only: ["VisionTower", "PatchMerger"], // VisionBlock has its own baselines
        sources: [GeneratorHarness.RepoSource("models/qwen2vl/Vision/VisionTower.cs"),
        GeneratorHarness.RepoSource("models/qwen2vl/Vision/VisionBlock.cs"),
        GeneratorHarness.RepoSource("models/qwen2vl/Vision/PatchMerger.cs")]);

    [Fact]
    public void ElementwiseChainWithBroadcast() => Check("ElementwiseChain", GeneratorHarness.RepoSource("tests/Qwen2VL.Tests/Generator/Samples/Gate.cs"));

    [Fact]
    public void NormWithResidual() => Check("NormWithResidual", GeneratorHarness.RepoSource("tests/Qwen2VL.Tests/Generator/Samples/Residual.cs"));

    [Fact]
    public void MovementAndSoftmax() => Check("MovementAndSoftmax", GeneratorHarness.RepoSource("tests/Qwen2VL.Tests/Generator/Samples/Mixer.cs"));

    [Fact]
    public void ConstsFromConfig() => Check("ConstsFromConfig", GeneratorHarness.RepoSource("tests/Qwen2VL.Tests/Generator/Samples/Tempered.cs"));

    private static void Check(string name, params (string Path, string Text)[] sources) => Check(name, null, sources);

    /// <summary>Compares the files of the modules named in <paramref name="only"/> (all when null).</summary>
    private static void Check(string name, string[]? only, (string Path, string Text)[] sources)
    {
        var result = GeneratorHarness.Run(sources);
        if (only is not null)
            foreach (var hint in result.Files.Keys.Where(k => !only.Any(m => k.Contains("." + m + "."))).ToList())
                result.Files.Remove(hint);
        Assert.Empty(result.Diagnostics);
        Assert.True(result.CompileErrors.IsEmpty, "generated code does not compile:\n" + string.Join("\n", result.CompileErrors.Take(10)));
        Assert.NotEmpty(result.Files);
        var dir = Path.Combine(BaselineDir(), name);
        var update = Environment.GetEnvironmentVariable("QVL_UPDATE_BASELINES") == "1";
        var mismatches = new List<string>();
        foreach (var (hint, text) in result.Files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var baseline = Path.Combine(dir, hint);
            var received = Path.Combine(dir, Path.GetFileNameWithoutExtension(hint) + ".received.cs");
            if (update)
            {
                Directory.CreateDirectory(dir);
                File.WriteAllText(baseline, text);
                File.Delete(received);
                continue;
            }
            if (File.Exists(baseline) && File.ReadAllText(baseline).ReplaceLineEndings("\n") == text.ReplaceLineEndings("\n"))
            {
                File.Delete(received);
                continue;
            }
            Directory.CreateDirectory(dir);
            File.WriteAllText(received, text);
            mismatches.Add(File.Exists(baseline) ? $"{hint} differs (see {received})" : $"{hint} has no baseline (see {received})");
        }
        if (!update && Directory.Exists(dir))
            foreach (var stale in Directory.GetFiles(dir, "*.g.cs").Select(Path.GetFileName).Where(f => !result.Files.ContainsKey(f!)))
                mismatches.Add($"{stale} is a baseline the generator no longer emits");
        Assert.True(mismatches.Count == 0,
            "generated code differs from the baselines:\n" + string.Join("\n", mismatches) +
            "\nIf the change is intended: QVL_UPDATE_BASELINES=1 dotnet test tests/Qwen2VL.Tests --filter FullyQualifiedName~BaselineTests");
    }

    private static string BaselineDir([CallerFilePath] string path = "") => Path.Combine(Path.GetDirectoryName(path)!, "Baselines");
}
