using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// The recompute policy of [Module(Recompute = …)] decides which values the generated training code does not keep
/// when its Recompute option is on: the default covers every cheap op, a narrower policy only its groups, None none;
/// the module's output is always kept.
/// </summary>
public sealed class RecomputePolicyTests
{
    private static string Training(string attribute)
    {
        var body = attribute + """

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
                    var a = Silu(Linear(h, W1));
                    return x + Linear(a, W2);
                }
            }
            """;
        var result = GeneratorHarness.Run(GeneratorHarness.Sample("M", body));
        Assert.Empty(result.Diagnostics);
        Assert.Empty(result.CompileErrors);
        return Assert.Single(result.Files, f => f.Key.EndsWith("M.Training.g.cs")).Value;
    }

    [Fact]
    public void DefaultPolicyRecomputesNormsAndActivationsButKeepsTheOutput()
    {
        var code = Training("[Module]");
        Assert.Contains("policy: CheapOps", code);
        Assert.Contains("if (!recompute) floats += (long)(Hidden * T); // t2 RmsNorm: recomputed", code);
        Assert.Contains("if (!recompute) floats += (long)(Inter * T); // t5 Silu: recomputed", code);
        Assert.Contains("floats += (long)(Hidden * T); // t8 Add", code);
        Assert.DoesNotContain("t8 Add: recomputed", code);
        Assert.Matches(@"Kernels\.CpuKernels\.RmsNorm_[0-9a-f]{8}\(t2, x, _norm, T, Hidden, 1e-6f\);", code.Substring(code.IndexOf("Backward(DeviceTensor dOutput")));
    }

    [Fact]
    public void NarrowerPolicyRecomputesOnlyItsGroups()
    {
        var code = Training("[Module(Recompute = RecomputeOps.Norms)]");
        Assert.Contains("policy: Norms", code);
        Assert.Contains("t2 RmsNorm: recomputed", code);
        Assert.DoesNotContain("Silu: recomputed", code);
        Assert.Contains("floats += (long)(Inter * T); // t5 Silu", code);
    }

    [Fact]
    public void NoneKeepsEverything()
    {
        var code = Training("[Module(Recompute = RecomputeOps.None)]");
        Assert.Contains("policy: None", code);
        Assert.DoesNotContain(": recomputed", code);
        Assert.DoesNotContain("Recomputed for the rule below", code);
        Assert.DoesNotContain("Workspace.", code);
        Assert.DoesNotContain("if (_recompute)", code);
    }
}
