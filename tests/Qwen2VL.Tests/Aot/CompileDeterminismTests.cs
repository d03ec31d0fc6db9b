using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary>Two compiles of the same sources give byte-identical folders: no timestamps, paths, or process-dependent ids.</summary>
[Collection(CompiledModelCollection.Name)]
public sealed class CompileDeterminismTests(CompiledModel first)
{
    [Fact]
    public void CompilingTwice_GivesIdenticalBytesInEveryFile()
    {
        Assert.True(first.ExitCode == 0, first.Error);
        var second = Path.Combine(first.Root, "again");
        // Another order of --arch and a fresh folder: the output must not depend on either.
        var (code, _, error) = Cli.Run("compile", "--arch", "sm_80", "--arch", "sm_90", "--out", second, "--config", "tiny");
        Assert.True(code == 0, error);

        var a = Files(first.BuildDir);
        var b = Files(second);
        Assert.Equal(a.Keys, b.Keys);
        Assert.Contains("manifest.json", a.Keys);
        Assert.Contains(a.Keys, k => k.StartsWith("sm_80/", StringComparison.Ordinal));
        Assert.Contains(a.Keys, k => k.StartsWith("sm_90/", StringComparison.Ordinal));
        foreach (var (name, bytes) in a)
            Assert.True(bytes.AsSpan().SequenceEqual(b[name]), $"{name} differs between two compiles");
    }

    [Fact]
    public void Output_HasLfNewlinesAndNoAbsolutePaths()
    {
        Assert.True(first.ExitCode == 0, first.Error);
        foreach (var (name, bytes) in Files(first.BuildDir))
        {
            var text = System.Text.Encoding.UTF8.GetString(bytes);
            Assert.DoesNotContain('\r', text);
            Assert.DoesNotContain(first.Root, text);
            Assert.DoesNotContain(Path.GetTempPath(), text);
            Assert.True(text.EndsWith('\n'), $"{name} does not end with a newline");
        }
    }

    private static SortedDictionary<string, byte[]> Files(string root) => new(
        Directory.GetFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllBytes),
        StringComparer.Ordinal);
}
