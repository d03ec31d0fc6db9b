using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary>
/// The loader's decisions without a GPU: which architecture's PTX a GPU takes, which kernels have PTX, what
/// <c>--no-jit</c> refuses, and which manifests are refused as stale at load (the present entries must match; a
/// missing kernel is the lookup's business, not staleness).
/// </summary>
[Collection(CompiledModelCollection.Name)]
public sealed class KernelLookupTests(CompiledModel build)
{
    private PtxManifest Manifest => build.Manifest ?? throw new InvalidOperationException("compile failed: " + build.Error);

    private static IReadOnlyList<AotKernel> Current => KernelCatalog.FromAssembly(CompiledModel.ModelAssembly);

    [Theory]
    [InlineData("sm_90", "sm_90")]
    [InlineData("sm_80", "sm_80")]
    [InlineData("sm_86", "sm_80")] // an RTX 30xx / A10 runs the Ampere build
    [InlineData("sm_89", "sm_80")] // Ada: no sm_89 build, sm_90 PTX would not load
    [InlineData("sm_100", "sm_90")] // newer GPUs take the newest build
    [InlineData("sm_75", null)]    // Turing is older than every build
    public void Lookup_PicksTheNewestBuiltArchitectureTheGpuCanRun(string device, string? expected) =>
        Assert.Equal(expected, KernelLookup.ChooseArchitecture(["sm_80", "sm_90"], device));

    [Fact]
    public void Lookup_OnlyNewerArchitecturesBuilt_FindsNone() =>
        Assert.Null(KernelLookup.ChooseArchitecture(["sm_90"], "sm_80"));

    [Fact]
    public void FreshBuild_HasEveryKernelForTheGpu()
    {
        var plan = KernelLookup.Plan(Manifest, Current, "sm_90");
        Assert.Equal("sm_90", plan.Architecture);
        Assert.Empty(plan.Missing);
        Assert.All(plan.Kernels, k => Assert.Equal("sm_90", k.Entry!.Architecture));
        Assert.All(plan.Kernels, k => Assert.Equal(k.Kernel.Key, k.Entry!.Key));
        KernelLookup.RequireComplete(plan, "build");
        Assert.StartsWith($"kernels: all {Current.Count} from sm_90 PTX in build", KernelLookup.Summary(plan, "build"));
    }

    [Fact]
    public void MissingKernel_IsAnErrorWithNoJit_NamingKernelAndArchitecture_ElseJitCompiled()
    {
        var edited = Manifest with { Kernels = Manifest.Kernels.Where(k => !(k.Key == "Runtime.AttentionCausalWarp" && k.Architecture == "sm_80")).ToArray() };
        ManifestValidator.CheckPresent(edited, Current); // not stale: the kernel is just absent

        var plan = KernelLookup.Plan(edited, Current, "sm_86");
        Assert.Equal("sm_80", plan.Architecture);
        Assert.Equal(["Runtime.AttentionCausalWarp"], plan.Missing.Select(k => k.Key));
        var e = Assert.Throws<AotException>(() => KernelLookup.RequireComplete(plan, "build"));
        Assert.Equal("--no-jit: kernel Runtime.AttentionCausalWarp has no sm_80 PTX in build; recompile with qwen2vl compile", e.Message);
        var note = KernelLookup.Summary(plan, "build");
        Assert.Contains("1 JIT-compiled by ILGPU", note);
        Assert.Contains("Runtime.AttentionCausalWarp", note);
        Assert.DoesNotContain('\n', note);

        // The sm_90 build still has it.
        Assert.Empty(KernelLookup.Plan(edited, Current, "sm_90").Missing);
    }

    [Fact]
    public void GpuOlderThanEveryBuild_IsAnErrorWithNoJit()
    {
        var plan = KernelLookup.Plan(Manifest, Current, "sm_75");
        Assert.Null(plan.Architecture);
        Assert.Equal(Current.Count, plan.Missing.Count);
        var e = Assert.Throws<AotException>(() => KernelLookup.RequireComplete(plan, "build"));
        Assert.StartsWith("--no-jit: build has no PTX a sm_75 GPU can run", e.Message);
        Assert.Contains("sm_75", e.Message);
        Assert.Contains("JIT-compiled", KernelLookup.Summary(plan, "build"));
    }

    [Fact]
    public void StaleEntry_IsRefusedAtLoad_NamingTheModule()
    {
        ManifestValidator.CheckPresent(Manifest, Current);
        var module = Manifest.Modules.Single(m => m.Name == "Kernels"); // the module whose PTX the model's kernels are
        var stale = new string('0', 64);
        var edited = Manifest with { Modules = Manifest.Modules.Select(m => m == module ? m with { GeneratedCodeHash = stale } : m).ToArray() };
        var e = Assert.Throws<AotException>(() => ManifestValidator.CheckPresent(edited, Current));
        Assert.Equal($"PTX manifest is stale: module Kernels was compiled from generated-code hash {stale}, the current hash is {module.GeneratedCodeHash}; recompile with qwen2vl compile", e.Message);
    }

    [Fact]
    public void StaleParameterTypes_AreRefusedAtLoad()
    {
        var target = Manifest.Kernels.First(k => k.Key == "Runtime.AttentionSegments");
        var edited = Manifest with { Kernels = Manifest.Kernels.Select(k => k == target ? k with { ParameterTypes = ["Index1D"] } : k).ToArray() };
        var e = Assert.Throws<AotException>(() => ManifestValidator.CheckPresent(edited, Current));
        Assert.Contains("kernel Runtime.AttentionSegments", e.Message);
        Assert.Contains("takes (Index1D)", e.Message);
    }

    [Fact]
    public void OtherIlgpuVersion_IsRefusedAtLoad()
    {
        var e = Assert.Throws<AotException>(() => ManifestValidator.CheckPresent(Manifest with { IlgpuVersion = "1.4.0" }, Current));
        Assert.StartsWith("PTX manifest was compiled with ILGPU 1.4.0", e.Message);
    }

    [Theory]
    [InlineData("sm80")]
    [InlineData("sm_x")]
    public void BadArchitectureName_IsOneLine(string name) =>
        Assert.Contains("is not an architecture name", Assert.Throws<AotException>(() => KernelLookup.SmNumber(name)).Message);
}
