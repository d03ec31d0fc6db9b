using Microsoft.CodeAnalysis;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// Each diagnostic id, triggered by a small DSL module, lands on the offending line as an error (so the build
/// fails there). Lines are 1-based within the sample file; the sample header is 5 lines long, so the module's
/// "[Module]" line is line 6.
/// </summary>
public sealed class DiagnosticTests
{
    private const string Dims = """
        [Dim("hidden")] public int Hidden;
        [Dim("inter")] public int Inter;
        [Param("w1", "Inter", "Hidden")] public Tensor W1 = null!;
        [Param("w2", "Hidden", "Inter")] public Tensor W2 = null!;
        [Param("norm", "Hidden")] public Tensor Norm = null!;
    """;

    private static Diagnostic Single(string body, string expectedId)
    {
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal(expectedId, diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.DoesNotContain(result.Files.Keys, k => k.Contains("Runner"));
        return diagnostic;
    }

    private static int Line(Diagnostic d) => d.Location.GetLineSpan().StartLinePosition.Line + 1;

    /// <summary>The 1-based line of <paramref name="marker"/> in the sample file built from <paramref name="body"/>.</summary>
    private static int LineOf(string body, string marker)
    {
        var lines = GeneratorHarness.Sample("M", body).Text.Split('\n');
        return Array.FindIndex(lines, l => l.Contains(marker)) + 1;
    }

    private static string Module(string forwardBody, string members = Dims, string parameters = "[Shape(\"T\", \"Hidden\")] Tensor x") => $$"""
        [Module]
        public partial class M
        {
        {{members}}
            public Tensor Forward({{parameters}})
            {
        {{forwardBody}}
            }
        }
        """;

    [Fact]
    public void WrongShapeIsABuildErrorOnItsLine()
    {
        // Linear(x [T, Hidden], W2 [Hidden, Inter]) needs x's last dim to be Inter: line 16 of the sample.
        var body = Module("""
                var h = RmsNorm(x, Norm, 1e-6f);
                var up = Linear(h, W1);
                var bad = Linear(h, W2);
                return bad;
        """);
        var d = Single(body, "QVL0101");
        Assert.Equal(LineOf(body, "var bad"), Line(d));
        Assert.Contains("Linear", d.GetMessage());
        Assert.Contains("K = Hidden", d.GetMessage());
        Assert.Contains("K = Inter", d.GetMessage());
    }

    [Fact]
    public void QVL0001_StatementOutsideTheSubset()
    {
        var body = Module("""
                var h = RmsNorm(x, Norm, 1e-6f);
                if (Hidden > 2) h = x;
                return h;
        """);
        Assert.Equal(LineOf(body, "if (Hidden"), Line(Single(body, "QVL0001")));
    }

    [Fact]
    public void QVL0002_ExpressionOutsideTheSubset()
    {
        var body = Module("""
                var h = RmsNorm(x, Norm, 1e-6f);
                var y = h.Shape.Length > 1 ? h : x;
                return y;
        """);
        Assert.Equal(LineOf(body, "var y"), Line(Single(body, "QVL0002")));
    }

    [Fact]
    public void QVL0003_ForwardParameterWithoutShape() =>
        Single(Module("        return x;", parameters: "Tensor x"), "QVL0003");

    [Fact]
    public void QVL0004_UnknownDimInAParamShape() =>
        Single(Module("        return Linear(x, W);", members: """
        [Dim("hidden")] public int Hidden;
        [Param("w", "Hidden", "Widht")] public Tensor W = null!;
    """), "QVL0004");

    [Fact]
    public void QVL0005_InvalidDimExpression() =>
        Single(Module("        return Linear(x, W);", members: """
        [Dim("hidden")] public int Hidden;
        [Param("w", "Hidden", "Hidden +* 2")] public Tensor W = null!;
    """), "QVL0005");

    [Fact]
    public void QVL0006_ModuleNotPartial()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", Module("        return x;").Replace("public partial class", "public class")));
        Assert.Contains(result.Diagnostics, d => d.Id == "QVL0006" && Line(d) == 7); // "public class M" follows "[Module]" on line 6
    }

    [Fact]
    public void QVL0009_NestedModule()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", "public partial class Outer\n{\n" + Module("        return x;") + "\n}"));
        Assert.Contains(result.Diagnostics, d => d.Id == "QVL0009");
    }

    private const string ShardedDims = """
        [Dim("hidden", Default = 64)] public int Hidden;
        [Dim("inter", Default = 96)] public int Inter;
        [Dim("heads")] public int Heads;
        [Param("w1", "Inter", "Hidden", Shard = Shard.Column)] public Tensor W1 = null!;
        [Param("w2", "Hidden", "Inter", Shard = Shard.Row)] public Tensor W2 = null!;
        [Param("wq", "Hidden", "Hidden", Shard = Shard.Column, ShardGroups = "Heads")] public Tensor Wq = null!;
        [Param("norm", "Hidden")] public Tensor Norm = null!;
    """;

    private const string ShardedBody = """
                var h = RmsNorm(x, Norm, 1e-6f);
                var q = Linear(h, Wq);
                return Linear(Linear(h, W1), W2);
        """;

    [Fact]
    public void QVL0401_ADegreeThatDoesNotDivideAKnownDimIsAnErrorOnTheParamsLine()
    {
        // Inter = 96 (its config default): 4 divides it, 5 does not; Heads has no default, so only bind time can check it.
        var body = Module(ShardedBody, members: ShardedDims).Replace("[Module]", "[Module(TensorParallel = new[] { 4, 5 })]");
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        Assert.Equal(["QVL0401", "QVL0401"], result.Diagnostics.Select(d => d.Id));
        Assert.Equal(LineOf(body, "\"w1\""), Line(result.Diagnostics[0]));
        Assert.Equal(LineOf(body, "\"w2\""), Line(result.Diagnostics[1]));
        Assert.Contains("degree 5 does not divide Inter = 96", result.Diagnostics[0].GetMessage());
        Assert.Equal(DiagnosticSeverity.Error, result.Diagnostics[0].Severity);
    }

    [Fact]
    public void AShardPlanThatDividesGeneratesItsBindTimeCheck()
    {
        var body = Module(ShardedBody, members: ShardedDims).Replace("[Module]", "[Module(TensorParallel = new[] { 2, 4 })]");
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        Assert.Empty(result.Diagnostics);
        Assert.True(result.CompileErrors.IsEmpty, string.Join("\n", result.CompileErrors.Take(5)));
        var plan = result.Files["Samples.M.ShardPlan.g.cs"];
        Assert.Contains("ShardCheck.Divides(prefix + \"wq\", \"Column\", \"Heads (heads)\", Heads, degree);", plan);
        Assert.Contains("(\"w2\", \"Row\", 1, \"Inter\")", plan);
        Assert.DoesNotContain("\"norm\"", plan); // replicated
    }

    [Fact]
    public void QVL0402_ARowParallelVectorIsAnInvalidPlan()
    {
        var members = ShardedDims + "\n    [Param(\"b2\", \"Hidden\", Shard = Shard.Row)] public Tensor B2 = null!;";
        var body = Module(ShardedBody, members: members);
        Assert.Equal(LineOf(body, "\"b2\""), Line(Single(body, "QVL0402")));
    }

    [Fact]
    public void QVL0402_ShardGroupsMustNameDims()
    {
        var body = Module(ShardedBody, members: ShardedDims.Replace("ShardGroups = \"Heads\"", "ShardGroups = \"Haeds\""));
        var diagnostic = Single(body, "QVL0402");
        Assert.Equal(LineOf(body, "\"wq\""), Line(diagnostic));
        Assert.Contains("'Haeds'", diagnostic.GetMessage());
    }

    [Fact]
    public void QVL0403_ASplitTheShardingPassCannotPlace()
    {
        // A column-parallel output (split by heads) normalised over its split axis: the runner compiles, the per-rank
        // graph cannot be made, and the error is on the norm's line.
        var body = Module("""
                var q = Linear(x, Wq);
                var n = RmsNorm(q, Norm, 1e-6f);
                return n;
        """, members: ShardedDims);
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("QVL0403", d.Id);
        Assert.Equal(LineOf(body, "var n = RmsNorm"), Line(d));
        Assert.Contains("RmsNorm reduces over the last axis of a value split along it", d.GetMessage());
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith(".Sharded.g.cs"));
    }

    [Fact]
    public void QVL0301_InvalidRecomputePolicy()
    {
        var body = Module("        return x;").Replace("[Module]", "[Module(Recompute = (RecomputeOps)16)]");
        Assert.Equal(6, Line(Single(body, "QVL0301")));
    }

    [Fact]
    public void QVL0007_UnknownName()
    {
        var body = Module("""
                y = x;
                return x;
        """);
        Assert.Equal(LineOf(body, "y = x;"), Line(Single(body, "QVL0007")));
    }

    [Fact]
    public void QVL0008_ParamThatIsNotATensor() =>
        Single(Module("        return x;", members: """
        [Dim("hidden")] public int Hidden;
        [Param("w", "Hidden")] public int W;
    """), "QVL0008");

    [Theory]
    [InlineData("[Const(\"rms_norm_eps\")] public double Eps;", "'double'")]
    [InlineData("[Const(\"rms_norm_eps\")] public int Eps;", "'int'")]
    [InlineData("[Const(\"rms_norm_eps\")] public readonly float Eps;", "'read-only float'")]
    [InlineData("[Const(\"rms_norm_eps\")] public float Eps => 1e-6f;", "'read-only float'")]
    public void QVL0010_ConstThatIsNotASettableFloat(string member, string named)
    {
        var body = Module("        return RmsNorm(x, Norm, 1e-6f);", members: Dims + "\n    " + member);
        var d = Single(body, "QVL0010");
        Assert.Equal(LineOf(body, "[Const("), Line(d));
        Assert.Contains("Eps", d.GetMessage());
        Assert.Contains(named, d.GetMessage());
    }

    [Theory]
    [InlineData("[Const(\"\")] public float Eps;")]
    [InlineData("[Const(\" \", Default = 1e-6)] public float Eps;")]
    public void QVL0011_ConstWithoutAConfigKey(string member)
    {
        var body = Module("        return RmsNorm(x, Norm, 1e-6f);", members: Dims + "\n    " + member);
        var d = Single(body, "QVL0011");
        Assert.Equal(LineOf(body, "[Const("), Line(d));
        Assert.Contains("Eps", d.GetMessage());
    }

    [Fact]
    public void AConstWhereATensorIsExpectedIsQVL0002OnItsLine()
    {
        var body = Module("""
                var h = RmsNorm(x, Norm, Eps);
                var y = Eps;
                return h;
        """, members: Dims + "\n    [Const(\"rms_norm_eps\", Default = 1e-6)] public float Eps;");
        var d = Single(body, "QVL0002");
        Assert.Equal(LineOf(body, "var y = Eps"), Line(d));
    }

    [Fact]
    public void QVL0102_RankMismatch() =>
        Single(Module("        return Linear(x, Norm);"), "QVL0102");

    [Fact]
    public void QVL0103_IntegerTensorWhereFloatIsExpected() =>
        Single(Module("        return RmsNorm(ids, Norm, 1e-6f);", parameters: "[Shape(\"T\", \"Hidden\", DType = DType.I64)] Tensor ids"), "QVL0103");

    [Fact]
    public void QVL0104_ReshapeChangesTheElementCount()
    {
        var d = Single(Module("        return Reshape(x, Inter, Hidden);"), "QVL0104");
        Assert.Contains("Reshape", d.GetMessage());
    }

    [Fact]
    public void QVL0105_AxisOutOfRange() =>
        Single(Module("        return Transpose(x, 0, 2);"), "QVL0105");

    [Fact]
    public void QVL0106_SubmoduleCalledWithTheWrongShape()
    {
        const string body = """
            [Module]
            public partial class Child
            {
                [Dim("hidden")] public int Hidden;
                public Tensor Forward([Shape("T", "Hidden")] Tensor x) { return Silu(x); }
            }

            [Module]
            public partial class Parent
            {
                [Dim("hidden")] public int Hidden;
                [Dim("inter")] public int Inter;
                [Submodule("child")] public Child C = null!;
                public Tensor Forward([Shape("T", "Inter")] Tensor x)
                {
                    return C.Forward(x);
                }
            }
            """;
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("QVL0106", d.Id);
        Assert.Equal(LineOf(body, "return C.Forward"), Line(d));
    }

    [Fact]
    public void QVL0107_LayerLoopChangesTheCarriedShape()
    {
        const string body = """
            [Module]
            public partial class Up
            {
                [Dim("hidden")] public int Hidden;
                [Dim("inter")] public int Inter;
                [Param("w", "Inter", "Hidden")] public Tensor W = null!;
                public Tensor Forward([Shape("T", "Hidden")] Tensor x) { return Linear(x, W); }
            }

            [Module]
            public partial class Stack
            {
                [Dim("layers")] public int Layers;
                [Submodule("layers", Count = "Layers")] public Up[] Blocks = null!;
                public Tensor Forward([Shape("T", "Hidden")] Tensor x)
                {
                    for (int i = 0; i < Blocks.Length; i++) x = Blocks[i].Forward(x);
                    return x;
                }
            }
            """;
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        Assert.Contains(result.Diagnostics, d => d.Id == "QVL0107" && Line(d) == LineOf(body, "for (int i"));
    }

    [Fact]
    public void QVL0201_OpWithAMalformedShapeRule()
    {
        var sample = GeneratorHarness.Sample("M", Module("        return Twice(x);") + """

            public static class MyOps
            {
                [Op(OpGroup.Elementwise, "x:[*S] [*S]", Scalar = "x + x")]
                public static Tensor Twice(Tensor x) => x + x;
            }
            """);
        var result = GeneratorHarness.Run((sample.Path, sample.Text.Replace("using static Qwen2VL.Dsl.Ops;", "using static Qwen2VL.Dsl.Ops;\nusing static Samples.MyOps;")));
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("QVL0201", d.Id);
    }

    /// <summary>A module that uses the user's op Twist, declared with <paramref name="opAttribute"/>; the file and Twist's line.</summary>
    private static ((string Path, string Text) Source, int Line) WithOwnOp(string opAttribute)
    {
        var sample = GeneratorHarness.Sample("M", Module("""
                var h = RmsNorm(x, Norm, 1e-6f);
                var t = Twist(h);
                return t;
        """) + $$"""

            public static class MyOps
            {
                {{opAttribute}}
                public static Tensor Twist(Tensor x) => x;
            }
            """);
        var text = sample.Text.Replace("using static Qwen2VL.Dsl.Ops;", "using static Qwen2VL.Dsl.Ops;\nusing static Samples.MyOps;");
        return ((sample.Path, text), Array.FindIndex(text.Split('\n'), l => l.Contains("var t = Twist")) + 1);
    }

    [Fact]
    public void QVL0203_GradientRuleThatDoesNotParse()
    {
        // An unknown function in the row: an error on the line that uses the op, and nothing emitted.
        var (source, line) = WithOwnOp("""[Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x * x", Grad = "dx = dy * Frob(x)")]""");
        var result = GeneratorHarness.Run(source);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("QVL0203", d.Id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal(line, Line(d));
        Assert.Contains("'Frob'", d.GetMessage());
        Assert.DoesNotContain(result.Files.Keys, k => k.Contains("Runner"));

        // Not an assignment, an unknown operand, a name the rule cannot read: the same id, each saying what is wrong.
        foreach (var (grad, says) in new[] { ("dy * x", "is not 'd<operand> = expression'"), ("dz = dy", "'dz' is not d<operand>"), ("dx = dy * w", "unknown name 'w'") })
        {
            var (bad, badLine) = WithOwnOp($$"""[Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x * x", Grad = "{{grad}}")]""");
            var diagnostic = Assert.Single(GeneratorHarness.Run(bad).Diagnostics);
            Assert.Equal("QVL0203", diagnostic.Id);
            Assert.Equal(badLine, Line(diagnostic));
            Assert.Contains(says, diagnostic.GetMessage());
        }
    }

    [Fact]
    public void QVL0203_OperandWithoutAGradientRow()
    {
        // The forward compiles (the runner is emitted); the training code needs dx and reports the missing row on the op's line.
        var (source, line) = WithOwnOp("""[Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x * x")]""");
        var result = GeneratorHarness.Run(source);
        Assert.NotEmpty(result.Diagnostics);
        Assert.All(result.Diagnostics, d => Assert.Equal("QVL0203", d.Id));
        Assert.All(result.Diagnostics, d => Assert.Equal(line, Line(d)));
        Assert.Contains("no row for dx", result.Diagnostics[0].GetMessage());
        Assert.Contains(result.Files.Keys, k => k.EndsWith(".Runner.g.cs"));
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith(".Training.g.cs"));
    }

    [Fact]
    public void QVL0202_CallOfAMethodThatIsNotAnOp()
    {
        var sample = GeneratorHarness.Sample("M", Module("        return Helper(x);") + """

            public static class Helpers
            {
                public static Tensor Helper(Tensor x) => x;
            }
            """);
        var result = GeneratorHarness.Run((sample.Path, sample.Text.Replace("using static Qwen2VL.Dsl.Ops;", "using static Qwen2VL.Dsl.Ops;\nusing static Samples.Helpers;")));
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("QVL0202", d.Id);
        Assert.Equal(sample.Text.Split('\n').ToList().FindIndex(l => l.Contains("return Helper(x)")) + 2, Line(d)); // +1 for the added using line
    }

    [Fact]
    public void EveryDescriptorIdIsCoveredByATest()
    {
        var tested = typeof(DiagnosticTests).GetMethods().Select(m => m.Name).Where(n => n.StartsWith("QVL")).Select(n => n.Substring(0, 7)).ToHashSet();
        tested.Add("QVL0101"); // WrongShapeIsABuildErrorOnItsLine
        var ids = typeof(Qwen2VL.Generator.Diagnostics.DiagnosticDescriptors).GetFields()
            .Where(f => f.FieldType == typeof(DiagnosticDescriptor)).Select(f => ((DiagnosticDescriptor)f.GetValue(null)!).Id);
        // QVL0901 (internal errors and ops a target cannot lower) is tested per target in LoweringTests.
        Assert.DoesNotContain(ids, id => id != "QVL0901" && !tested.Contains(id));
    }
}
