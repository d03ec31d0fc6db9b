using Microsoft.CodeAnalysis;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// Lowering is exhaustive and typed: every op kind has a lowering on every target, or the target says so. A declared op
/// the generator has no kind for (here a movement op of the user's own) gives, per target, QVL0901 on the line that uses
/// it, naming the op and the target, and no file for that target: never an empty kernel that compiles and does nothing.
/// </summary>
public sealed class LoweringTests
{
    private const string Body = """
        [Module]
        public partial class M
        {
            [Dim("hidden")] public int Hidden;
            [Param("norm", "Hidden")] public Tensor Norm = null!;
            public Tensor Forward([Shape("T", "Hidden")] Tensor x)
            {
                var h = RmsNorm(x, Norm, 1e-6f);
                var flipped = Flip(h);
                return Scale(flipped, 2f);
            }
        }

        public static class MyOps
        {
            [Op(OpGroup.Movement, "x:[*S] -> [*S]")]
            public static Tensor Flip(Tensor x) => x;
        }
        """;

    private static (GeneratorHarness.Result Result, int Line) Run()
    {
        var sample = GeneratorHarness.Sample("M", Body);
        var text = sample.Text.Replace("using static Qwen2VL.Dsl.Ops;", "using static Qwen2VL.Dsl.Ops;\nusing static Samples.MyOps;");
        var line = Array.FindIndex(text.Split('\n'), l => l.Contains("var flipped")) + 1;
        return (GeneratorHarness.Run((sample.Path, text)), line);
    }

    private static Diagnostic For(GeneratorHarness.Result result, string target)
    {
        var d = Assert.Single(result.Diagnostics, d => d.GetMessage().Contains($"no {target} lowering"));
        Assert.Equal("QVL0901", d.Id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Contains("'Flip'", d.GetMessage());
        return d;
    }

    private static int LineOf(Diagnostic d) => d.Location.GetLineSpan().StartLinePosition.Line + 1;

    [Fact]
    public void GpuTarget_OpKindWithoutALoweringIsQVL0901OnItsLine()
    {
        var (result, line) = Run();
        Assert.Equal(line, LineOf(For(result, "GPU kernel")));
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith("Kernels.Gpu.g.cs")); // M is the only module: no kernel file at all
    }

    [Fact]
    public void CpuTarget_OpKindWithoutALoweringIsQVL0901OnItsLine()
    {
        var (result, line) = Run();
        Assert.Equal(line, LineOf(For(result, "CPU kernel")));
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith("Kernels.Cpu.g.cs"));
    }

    [Fact]
    public void HostRunner_OpKindWithoutALoweringIsQVL0901OnItsLine()
    {
        var (result, line) = Run();
        Assert.All(result.Diagnostics, d => Assert.Equal("QVL0901", d.Id));
        Assert.Contains(result.Diagnostics, d => d.GetMessage().Contains("no host runner lowering") && LineOf(d) == line);
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith(".Runner.g.cs"));
    }

    [Fact]
    public void AnElementwiseOpOfTheUsersOwnIsLoweredFromItsFormula()
    {
        var sample = GeneratorHarness.Sample("M", Body.Replace("[Op(OpGroup.Movement, \"x:[*S] -> [*S]\")]",
            "[Op(OpGroup.Elementwise, \"x:[*S] -> [*S]\", Scalar = \"-x\", Grad = \"dx = -dy\")]"));
        var text = sample.Text.Replace("using static Qwen2VL.Dsl.Ops;", "using static Qwen2VL.Dsl.Ops;\nusing static Samples.MyOps;");
        var result = GeneratorHarness.Run((sample.Path, text));
        Assert.Empty(result.Diagnostics);
        Assert.Empty(result.CompileErrors);
        Assert.Contains("-v", result.Files.Single(f => f.Key.EndsWith(".Cpu.g.cs")).Value);
    }
}
