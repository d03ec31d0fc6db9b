using System.Runtime.CompilerServices;
using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary>
/// The PTX of a few representative kernels (a norm, a rotary, a GEMM with a fused epilogue, an attention kernel, the bf16-weight GEMV, AdamW writing bf16 weights) for
/// sm_80 and sm_90, compared with the files under Aot/Baselines/&lt;configuration&gt;/&lt;arch&gt;/. ILGPU compiles
/// the assemblies' IL, and Debug IL gives other (equivalent) PTX than Release IL, hence one set per configuration.
/// A mismatch writes a <c>.received.ptx</c> beside the baseline and fails; to accept an intended change, run in both
/// configurations <c>QVL_UPDATE_BASELINES=1 dotnet test tests/Qwen2VL.Tests [-c Release] --filter FullyQualifiedName~PtxBaselineTests</c>.
/// </summary>
public sealed class PtxBaselineTests
{
    public static readonly TheoryData<string, string> Kernels = Cases();

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Ptx_MatchesBaseline(string architecture, string kernelKey)
    {
        var kernel = KernelCatalog.Build(CompiledModel.ModuleTypes).Single(k => k.Key == kernelKey);
        var ptx = PtxCompiler.Compile(kernel, PtxTarget.Parse(architecture)).Ptx;

        var dir = Path.Combine(BaselineDir(), architecture);
        var baseline = Path.Combine(dir, kernel.FileName);
        var received = Path.Combine(dir, kernel.Key + ".received.ptx");
        if (Environment.GetEnvironmentVariable("QVL_UPDATE_BASELINES") == "1")
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(baseline, ptx);
            File.Delete(received);
            return;
        }
        if (File.Exists(baseline) && File.ReadAllText(baseline).ReplaceLineEndings("\n") == ptx)
        {
            File.Delete(received);
            return;
        }
        Directory.CreateDirectory(dir);
        File.WriteAllText(received, ptx);
        Assert.Fail((File.Exists(baseline) ? $"PTX of {kernelKey} for {architecture} differs from {baseline}" : $"no baseline {baseline}") +
                    $" (see {received}); if intended: QVL_UPDATE_BASELINES=1 dotnet test tests/Qwen2VL.Tests -c {AotBuild.BuildConfiguration(CompiledModel.ModuleTypes)} --filter FullyQualifiedName~PtxBaselineTests");
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Baseline_TargetsItsArchitecture(string architecture, string kernelKey)
    {
        var path = Path.Combine(BaselineDir(), architecture, kernelKey + ".ptx");
        Assert.True(File.Exists(path), $"missing baseline {path}");
        var ptx = File.ReadAllText(path).ReplaceLineEndings("\n");
        // No kernel uses Hopper-only (sm_90a) instructions today, so sm_90 builds say .target sm_90.
        Assert.Equal(architecture, PtxText.Target(ptx));
        Assert.Contains(architecture == "sm_80" ? ".version 7.0\n" : ".version 7.8\n", ptx);
    }

    private static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var architecture in new[] { "sm_80", "sm_90" })
            foreach (var kernel in new[]
                     {
                         "Kernels." + CompiledModel.Kernel("LayerNorm"),       // norm (one thread per row)
                         "Kernels." + CompiledModel.Kernel("VisionRotary"),    // rotary
                         "Kernels." + CompiledModel.Kernel("MRope"),           // M-RoPE: theta ([Const] rope_theta) is an .f32 parameter
                         "Kernels.GemmBlocked." + CompiledModel.Kernel("Linear_QuickGelu_Epilogue"), // tiled GEMM with a fused bias + QuickGELU epilogue
                         "Runtime.AttentionSegments",                         // attention
                         "Runtime.GemmBf16Skinny.NoEpilogue",                 // decode GEMV with bf16 weights (16-bit loads widened by a shift)
                         "Runtime.AdamWBf16",                                 // AdamW writing the bf16 compute weights (ties-to-even rounding)
                     })
                data.Add(architecture, kernel);
        return data;
    }

    private static string BaselineDir([CallerFilePath] string path = "") =>
        Path.Combine(Path.GetDirectoryName(path)!, "Baselines", AotBuild.BuildConfiguration(CompiledModel.ModuleTypes));
}
