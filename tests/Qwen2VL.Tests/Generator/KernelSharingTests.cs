using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// Kernels by content: over every file the generator emits for the whole model (all its [Module]s, inference and
/// training), no two kernels or GEMM epilogues are the same once their names are normalised, and every kernel lives in
/// the shared kernel class (no module file defines one).
/// </summary>
public sealed class KernelSharingTests(ITestOutputHelper output)
{
    private static readonly string[] ModelSources =
    [
        "models/qwen2vl/Vision/VisionBlock.cs",
        "models/qwen2vl/Vision/PatchMerger.cs",
        "models/qwen2vl/Vision/VisionTower.cs",
        "models/qwen2vl/Decoder/DecoderLayer.cs",
        "models/qwen2vl/Compiled/OutputModules.cs",
    ];

    private static readonly Regex KernelStart = new(@"^(\s*)public (?:static void|(?:readonly )?struct) (\w+)", RegexOptions.Multiline);

    /// <summary>Each kernel method and epilogue struct of a file: its name and its text without comments, the name replaced by "K" and graph value numbers renumbered.</summary>
    internal static List<(string Name, string Normalised)> Kernels(string file)
    {
        var lines = file.Replace("\r\n", "\n").Split('\n');
        var result = new List<(string, string)>();
        for (var i = 0; i < lines.Length; i++)
        {
            var m = KernelStart.Match(lines[i]);
            if (!m.Success || lines[i].Contains(" class "))
                continue;
            var indent = m.Groups[1].Value;
            var body = new List<string> { lines[i] };
            while (++i < lines.Length && lines[i] != indent + "}")
                body.Add(lines[i]);
            var text = string.Join("\n", body.Where(l => !l.TrimStart().StartsWith("//"))).Replace(m.Groups[2].Value, "K");
            var ids = new Dictionary<string, string>();
            text = Regex.Replace(text, @"\bv\d+\b", v => ids.TryGetValue(v.Value, out var r) ? r : ids[v.Value] = "v" + ids.Count);
            result.Add((m.Groups[2].Value, text));
        }
        return result;
    }

    [Fact]
    public void TheWholeModel_EmitsEachDistinctKernelOnce()
    {
        var result = GeneratorHarness.Run(ModelSources.Select(GeneratorHarness.RepoSource).ToArray());
        Assert.Empty(result.Diagnostics);
        Assert.True(result.CompileErrors.IsEmpty, string.Join("\n", result.CompileErrors.Take(5)));
        foreach (var form in new[] { "Gpu", "Cpu" })
        {
            var file = Assert.Single(result.Files, f => f.Key.EndsWith($"Generated.Kernels.{form}.g.cs")).Value;
            var kernels = Kernels(file);
            Assert.True(kernels.Count > 20, $"only {kernels.Count} {form} kernels found: the parser is out of date");
            var duplicates = kernels.GroupBy(k => k.Normalised).Where(g => g.Count() > 1).Select(g => string.Join(" = ", g.Select(k => k.Name))).ToList();
            Assert.True(duplicates.Count == 0, $"{form} kernels emitted twice under different names: {string.Join("; ", duplicates)}");
            Assert.Equal(kernels.Count, kernels.Select(k => k.Name).Distinct().Count());
            output.WriteLine($"{form}: {kernels.Count} kernels and epilogues, all distinct");
        }
        // No module file holds a kernel of its own: the runners and training code call the shared ones.
        foreach (var (hint, text) in result.Files.Where(f => !f.Key.Contains("Generated.Kernels")))
        {
            Assert.DoesNotContain("Index1D index", text.Split('\n').Where(l => l.Contains("public static void")));
            Assert.DoesNotContain("IGemmEpilogue", text.Replace("global::", ""));
        }
        output.WriteLine($"generated: {result.Files.Count} files, {result.Files.Values.Sum(t => t.Count(c => c == '\n'))} lines");
    }

    [Fact]
    public void AnOpUsedTwice_SharesOneGradientKernel()
    {
        // Two uses of Silu in one module and one in another: one forward kernel, one gradient kernel in the shared file.
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("Two", """
            [Module]
            public partial class A
            {
                [Dim("hidden")] public int Hidden;
                public Tensor Forward([Shape("T", "Hidden")] Tensor x)
                {
                    var a = Silu(x);
                    var b = Silu(Scale(x, 2f));
                    return a + b;
                }
            }

            [Module]
            public partial class B
            {
                [Dim("hidden")] public int Hidden;
                public Tensor Forward([Shape("T", "Hidden")] Tensor x)
                {
                    var y = Silu(x);
                    return y;
                }
            }
            """));
        Assert.Empty(result.Diagnostics);
        Assert.True(result.CompileErrors.IsEmpty, string.Join("\n", result.CompileErrors.Take(5)));
        var names = Kernels(result.Files.Single(f => f.Key.EndsWith("Generated.Kernels.Cpu.g.cs")).Value).Select(k => k.Name).ToList();
        Assert.Single(names, n => n.StartsWith("Grad_Silu_"));
        Assert.Single(names, n => n.StartsWith("Silu_"));
        Assert.Equal(names.Count, names.Distinct().Count());
    }
}
