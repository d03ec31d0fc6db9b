using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// The collectives are ops of the DSL op set to the generator: shape inference types them (AllGather and ReduceScatter
/// by their degree), autodiff reads their rows, so the backward pass of a Megatron MLP written with them has the
/// conjugate collectives (ParallelCopy's step all-reduces, AllReduce's does not). No target lowers them yet: each use
/// is QVL0901 on its line, per target, and no runner is emitted. A bad row of a collective is QVL0203.
/// </summary>
public sealed class CollectiveGraphTests
{
    private const string Module = """
        [Module]
        public partial class M
        {
            [Dim("hidden")] public int Hidden;
            [Dim("inter")] public int Inter;
            [Dim("tp")] public int Tp;
            [Param("w1", "Inter", "Hidden")] public Tensor W1 = null!;
            [Param("w2", "Hidden", "Inter")] public Tensor W2 = null!;
            public Tensor Forward([Shape("T", "Hidden")] Tensor x)
            {
                var h = ParallelCopy(x);
                var a = Silu(Linear(h, W1));
                var y = AllReduce(Linear(a, W2));
                var g = AllGather(y, Tp);
                return ReduceScatter(g, Tp);
            }
        }
        """;

    private static int Line(Diagnostic d) => d.Location.GetLineSpan().StartLinePosition.Line + 1;

    [Fact]
    public void ShapesAndBackwardCollectivesFollowTheTable_NoTargetLowersThemYet()
    {
        var sample = GeneratorHarness.Sample("M", Module);
        var result = GeneratorHarness.Run(sample);
        var lines = sample.Text.Split('\n');
        int LineOf(string marker) => Array.FindIndex(lines, l => l.Contains(marker)) + 1;

        // Every diagnostic is QVL0901 on a line that calls a collective, never on the Linear/Silu lines.
        Assert.NotEmpty(result.Diagnostics);
        Assert.All(result.Diagnostics, d => Assert.Equal("QVL0901", d.Id));
        var collectiveLines = new[] { "ParallelCopy(x)", "AllReduce(Linear", "AllGather(y", "ReduceScatter(g" }.Select(LineOf).ToHashSet();
        Assert.All(result.Diagnostics, d => Assert.Contains(Line(d), collectiveLines));
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith(".Runner.g.cs") || k.EndsWith(".Training.g.cs"));

        // The pass dump still shows the typed graph and the backward steps.
        var dump = result.Files.Single(f => f.Key.EndsWith("M.Graph.g.cs")).Value;
        Assert.Matches(@"%\d+ = op ParallelCopy\(%0\) : \[T, Hidden\]", dump);
        Assert.Matches(@"%\d+ = op AllGather\(%\d+\) \{Tp\} : \[T, Hidden\*Tp\]", dump);
        Assert.Matches(@"%\d+ = op ReduceScatter\(%\d+\) \{Tp\} : \[T, Hidden\]", dump);
        var backward = dump.Split('\n').SkipWhile(l => l != "backward").Skip(1).TakeWhile(l => l.StartsWith("  %")).ToList();
        string Step(string op) => backward.Single(l => Regex.IsMatch(l, $@"^  %\d+ {op}:"));
        Assert.Contains("dx = AllGather(dy, parts)", Step("ReduceScatter"));
        Assert.Contains("dx = ReduceScatter(dy, parts)", Step("AllGather"));
        Assert.Contains("dx = ParallelCopy(dy)", Step("AllReduce"));   // g: identity backward
        Assert.Contains("dx = AllReduce(dy)", Step("ParallelCopy"));   // f: the input gradient is all-reduced
        Assert.Equal(new[] { "ReduceScatter", "AllGather", "AllReduce", "Linear", "Silu", "Linear", "ParallelCopy" },
            backward.Select(l => Regex.Match(l, @"^  %\d+ (\w+):").Groups[1].Value));
    }

    [Fact]
    public void QVL0203_ACollectiveWithABadRow()
    {
        var sample = GeneratorHarness.Sample("M", """
            [Module]
            public partial class M
            {
                [Dim("hidden")] public int Hidden;
                [Param("norm", "Hidden")] public Tensor Norm = null!;
                public Tensor Forward([Shape("T", "Hidden")] Tensor x)
                {
                    var t = MySum(RmsNorm(x, Norm, 1e-6f));
                    return t;
                }
            }

            public static class MyOps
            {
                [Op(OpGroup.Collective, "x:[*S] -> [*S]", Grad = "dx = AllReduce(dz)")]
                public static Tensor MySum(Tensor x) => x;
            }
            """);
        var text = sample.Text.Replace("using static Qwen2VL.Dsl.Ops;", "using static Qwen2VL.Dsl.Ops;\nusing static Samples.MyOps;");
        var result = GeneratorHarness.Run((sample.Path, text));
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("QVL0203", d.Id);
        Assert.Equal(Array.FindIndex(text.Split('\n'), l => l.Contains("var t = MySum")) + 1, Line(d));
        Assert.Contains("unknown name 'dz'", d.GetMessage());
    }
}
