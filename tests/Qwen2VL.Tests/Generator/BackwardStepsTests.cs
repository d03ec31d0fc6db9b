using System.Text.RegularExpressions;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// The autodiff pass builds the backward steps from the gradient table: in reverse program order, each with its rows
/// and the forward values they read, which the training memory plan decides on. Read from the pass dump (FusedGraph).
/// </summary>
public sealed class BackwardStepsTests
{
    private const string Module = """
        [Module]
        public partial class M
        {
            [Dim("hidden")] public int Hidden;
            [Dim("inter")] public int Inter;
            [Param("w1", "Inter", "Hidden")] public Tensor W1 = null!;
            [Param("w2", "Hidden", "Inter")] public Tensor W2 = null!;
            [Param("norm", "Hidden")] public Tensor Norm = null!;
            public Tensor Forward([Shape("T", "Hidden")] Tensor x)
            {
                var h = RmsNorm(x, Norm, 1e-6f);
                var up = Reshape(Linear(h, W1), -1, Inter);
                var a = Silu(up) * up;
                return x + Linear(a, W2);
            }
        }
        """;

    /// <summary>The dump's graph (id → op name) and its backward steps (op name, rows, ops read) in order.</summary>
    private static (Dictionary<int, string> Graph, List<(string Op, string Rows, List<string> Reads)> Steps) Dump()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", Module));
        Assert.Empty(result.Diagnostics);
        Assert.True(result.CompileErrors.IsEmpty, string.Join("\n", result.CompileErrors.Take(5)));
        var lines = result.Files.Single(f => f.Key.EndsWith("M.Graph.g.cs")).Value.Split('\n');
        var graph = new Dictionary<int, string>();
        foreach (var line in lines)
            if (Regex.Match(line, @"^  %(\d+) = \w+ (\w+)\(") is { Success: true } m)
                graph[int.Parse(m.Groups[1].Value)] = m.Groups[2].Value;
        var steps = new List<(string, string, List<string>)>();
        var start = Array.IndexOf(lines, "backward");
        Assert.True(start > 0, "the dump has no backward section");
        for (var i = start + 1; lines[i].StartsWith("  %"); i++)
        {
            var m = Regex.Match(lines[i], @"^  %(\d+) (\w+): (.*)   reads (.*)$");
            Assert.True(m.Success, lines[i]);
            Assert.Equal(graph[int.Parse(m.Groups[1].Value)], m.Groups[2].Value);
            var reads = m.Groups[4].Value == "-" ? new List<string>()
                : m.Groups[4].Value.Split(' ').Select(r => graph[int.Parse(r.TrimStart('%'))]).ToList();
            steps.Add((m.Groups[2].Value, m.Groups[3].Value, reads));
        }
        return (graph, steps);
    }

    [Fact]
    public void StepsRunInReverseProgramOrder_ViewsShareTheirSourcesGradient()
    {
        var (_, steps) = Dump();
        // Reshape is a view: no step of its own (its gradient is its source's, the Linear's output).
        Assert.Equal(new[] { "Add", "Linear", "Mul", "Silu", "Linear", "RmsNorm" }, steps.Select(s => s.Op));
    }

    [Fact]
    public void EachStepReadsWhatItsRowsName()
    {
        var steps = Dump().Steps;
        Assert.Equal("da = dy; db = dy", steps[0].Rows);
        Assert.Empty(steps[0].Reads); // the residual add's gradient reads no forward value
        Assert.Equal("dx = MatMul(dy, w); dw = MatMulTN(dy, x)", steps[1].Rows); // no bias operand: no db row
        Assert.Equal(new[] { "Mul", "W2" }, steps[1].Reads); // x (the Mul's output) and the weight
        Assert.Equal(new[] { "Reshape", "Silu" }, steps[2].Reads.Order()); // da = dy * b, db = dy * a
        Assert.Equal(new[] { "Reshape" }, steps[3].Reads); // Silu's row reads x only
        Assert.Equal(new[] { "x", "Norm" }, steps[5].Reads); // RmsNormBackward(dy, x, w, eps)
    }

    [Fact]
    public void TheTrainingPlanNoLongerReadsEmittedText()
    {
        // What a rule reads comes from the table: no regular expression over generated code is left in the autodiff,
        // the training emitter or the memory planner (KernelIdentity's renumbering of kernel text is the only Regex).
        var root = Path.Combine(GeneratorHarness.RepoRoot(), "generator");
        var users = Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && File.ReadAllText(f).Contains("Regex"))
            .Select(f => Path.GetFileName(f)).ToList();
        Assert.Equal(new[] { "KernelIdentity.cs" }, users);
    }
}
