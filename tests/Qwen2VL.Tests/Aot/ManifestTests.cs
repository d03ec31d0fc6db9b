using System.Reflection;
using System.Security.Cryptography;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary>What <c>manifest.json</c> of a compile says, checked against the model assembly and the PTX files.</summary>
[Collection(CompiledModelCollection.Name)]
public sealed class ManifestTests(CompiledModel build)
{
    private PtxManifest Manifest => build.Manifest ?? throw new InvalidOperationException("compile failed: " + build.Error);

    [Fact]
    public void Compile_ReportsWhatItWrote()
    {
        Assert.True(build.ExitCode == 0, build.Error);
        Assert.Equal("", build.Error);
        Assert.Contains($"compiled {Manifest.Kernels.Count} kernels", build.Output);
        Assert.Equal(["sm_80", "sm_90"], Manifest.Architectures);
        Assert.Equal("1.5.3", Manifest.IlgpuVersion);
#if DEBUG
        Assert.Equal("Debug", Manifest.BuildConfiguration);
#else
        Assert.Equal("Release", Manifest.BuildConfiguration);
#endif
    }

    [Fact]
    public void Catalog_FindsTheModulesMarkedWithTheDslAttribute()
    {
        Assert.Equal(CompiledModel.ModuleTypes, KernelCatalog.ModuleTypes(CompiledModel.ModelAssembly));
        Assert.Equal(["DecoderLayer", "FinalNorm", "LmHead", "PatchMerger", "TokenEmbedding", "VisionBlock", "VisionTower"], CompiledModel.ModuleTypes.Select(t => t.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void EveryGpuKernelsMethod_IsInTheManifest_ForEachArchitecture()
    {
        var methods = CompiledModel.SharedGpuKernels.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Select(k => "Kernels." + k.Name)
            .ToArray();
        Assert.Contains("Kernels." + CompiledModel.Kernel("LayerNorm"), methods);
        Assert.Contains("Kernels." + CompiledModel.Kernel("MRope"), methods);
        // The [Module] classes hold no kernels of their own: each distinct kernel is in the shared class once.
        Assert.All(CompiledModel.ModuleTypes, m => Assert.Null(m.GetNestedType("GpuKernels")));
        foreach (var architecture in Manifest.Architectures)
        {
            var keys = Manifest.Kernels.Where(k => k.Architecture == architecture).Select(k => k.Key).ToHashSet();
            foreach (var method in methods)
                Assert.True(keys.Contains(method), $"{method} missing for {architecture}");
        }
    }

    [Fact]
    public void EveryEpilogue_HasItsGemmKernels_AndTheRuntimeKernelsArePresent()
    {
        var epilogues = CompiledModel.SharedGpuKernels.GetNestedTypes()
            .Where(t => typeof(IGemmEpilogue).IsAssignableFrom(t)).Select(t => ("Kernels", t.Name))
            .ToArray();
        Assert.NotEmpty(epilogues);
        var keys = Manifest.Kernels.Where(k => k.Architecture == "sm_80").Select(k => k.Key).ToHashSet();
        foreach (var (module, epilogue) in epilogues)
            foreach (var gemm in new[] { "GemmBlocked", "GemmSkinny", "GemmEpilogue", "GemmBf16Blocked", "GemmBf16Skinny" })
                Assert.Contains($"{module}.{gemm}.{epilogue}", keys);
        foreach (var runtime in new[]
                 {
                     "Runtime.GemmBlocked.NoEpilogue", "Runtime.GemmSkinny.NoEpilogue", "Runtime.AttentionSegments", "Runtime.AttentionCausal",
                     "Runtime.GemmBf16Blocked.NoEpilogue", "Runtime.GemmBf16Skinny.NoEpilogue", "Runtime.GatherBf16Rows",
                     "Runtime.GemmBackwardBf16", "Runtime.AdamWBf16",
                 })
            Assert.Contains(runtime, keys);
    }

    [Fact]
    public void EachEntry_MatchesItsFile_AndCarriesItsHashes()
    {
        var modules = Manifest.Modules.ToDictionary(m => m.Name, m => m.GeneratedCodeHash);
        Assert.Equal(CompiledModel.ModuleTypes.Select(t => t.Name).Append("Runtime").Append("Kernels").Order(StringComparer.Ordinal), modules.Keys);
        foreach (var k in Manifest.Kernels)
        {
            Assert.Equal($"{k.Architecture}/{k.Module}.{k.Name}.ptx", k.File);
            var bytes = File.ReadAllBytes(Path.Combine(build.BuildDir, k.File));
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), k.Sha256);
            Assert.Matches("^[0-9a-f]{64}$", k.GeneratedCodeHash);
            Assert.Equal(modules[k.Module], k.GeneratedCodeHash);
            var ptx = System.Text.Encoding.UTF8.GetString(bytes);
            Assert.Equal([k.EntryPoint], PtxText.EntryPoints(ptx));
            Assert.Equal(k.Architecture, k.Target);
            Assert.Equal(k.Architecture, PtxText.Target(ptx));
            Assert.False(PtxText.UsesHopperOnlyInstructions(ptx), $"{k.Key} uses an sm_90a-only instruction");
            Assert.Empty(k.SpecializationConstants);
            Assert.NotEmpty(k.ParameterTypes);
        }
    }

    [Fact]
    public void EntryPointAndParameters_AreWhatTheRuntimeLaunches()
    {
        var layerNormName = CompiledModel.Kernel("LayerNorm");
        var layerNorm = Manifest.Kernels.Single(k => k.Key == "Kernels." + layerNormName && k.Architecture == "sm_80");
        Assert.Equal("Kernel_" + layerNormName, layerNorm.EntryPoint);
        Assert.Equal("implicit", layerNorm.Grouping);
        Assert.Equal(["Index1D", "ArrayView<float>", "ArrayView<float>", "ArrayView<float>", "ArrayView<float>", "int", "int", "float"], layerNorm.ParameterTypes);
        var epilogue = CompiledModel.Kernel("Linear_Epilogue");
        var gemm = Manifest.Kernels.Single(k => k.Key == "Kernels.GemmBlocked." + epilogue && k.Architecture == "sm_90");
        Assert.Equal("explicit", gemm.Grouping);
        Assert.Equal("Kernel_Run", gemm.EntryPoint);
        Assert.Equal("Kernels.GpuKernels." + epilogue, gemm.ParameterTypes[^1]);
        Assert.Equal("7.8", gemm.InstructionSet);
        Assert.Equal(0, layerNorm.SharedMemoryBytes);
        // bf16 weights: the same launch, w an ArrayView<ushort> of bf16 bit patterns widened where it is read.
        var bf16 = Manifest.Kernels.Single(k => k.Key == "Kernels.GemmBf16Skinny." + epilogue && k.Architecture == "sm_80");
        Assert.Equal("explicit", bf16.Grouping);
        Assert.Equal(["ArrayView<float>", "ArrayView<ushort>", "ArrayView<float>", "int", "int", "int", "Kernels.GpuKernels." + epilogue], bf16.ParameterTypes);
        Assert.Equal(2 * 16 * (GemmBlockedKernel.Block + 1) * sizeof(float), gemm.SharedMemoryBytes); // two staging tiles [Depth 16, Block + 1]
    }

    [Fact]
    public void Config_RecordsTheTinyFixture()
    {
        var config = Manifest.Config!;
        Assert.Equal("tiny", config.Name);
        var fixture = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "config.json")).ReplaceLineEndings("\n");
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(fixture))), config.Sha256);
        var block = config.Dims.Single(d => d.Module == "VisionBlock").Values.ToDictionary();
        Assert.Equal(32, block["Embed"]);
        Assert.Equal(2, block["Heads"]);
        var decoder = config.Dims.Single(d => d.Module == "DecoderLayer").Values.ToDictionary();
        Assert.Equal(64, decoder["Hidden"]);
        Assert.Equal(2, decoder["KvHeads"]);
        var consts = config.Consts.Single(c => c.Module == "DecoderLayer").Values.ToDictionary();
        Assert.Equal(1e-6f, consts["Eps"]);
        Assert.Equal(1e6f, consts["RopeTheta"]);
        Assert.Equal(1e-6f, config.Consts.Single(c => c.Module == "FinalNorm").Values.ToDictionary()["Eps"]);
        Assert.DoesNotContain(config.Consts, c => c.Module == "VisionBlock"); // its eps is a literal, as in HF
    }

    [Fact]
    public void BuiltInTiny_IsTheFixtureConfig()
    {
        var fixture = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "config.json")).ReplaceLineEndings("\n");
        Assert.Equal(fixture, BuiltInConfigs.Get("tiny"));
    }

    [Theory]
    [InlineData("2b", 1536, 12, 2, 8960)]
    [InlineData("7b", 3584, 28, 4, 18944)]
    [InlineData("72b", 8192, 64, 8, 29568)]
    public void BuiltInSizes_GiveTheSpecDims(string name, int hidden, int heads, int kvHeads, int intermediate)
    {
        var config = AotConfig.BuiltIn(name).ToManifest(CompiledModel.ModuleTypes);
        var decoder = config.Dims.Single(d => d.Module == "DecoderLayer").Values.ToDictionary();
        Assert.Equal((hidden, heads, kvHeads, intermediate), (decoder["Hidden"], decoder["Heads"], decoder["KvHeads"], decoder["Intermediate"]));
        Assert.Equal((16, 24, 24), (decoder["SectionT"], decoder["SectionH"], decoder["SectionW"]));
        var block = config.Dims.Single(d => d.Module == "VisionBlock").Values.ToDictionary();
        Assert.Equal((1280, 16, 4), (block["Embed"], block["Heads"], block["MlpRatio"]));
        Assert.Equal(hidden, config.Dims.Single(d => d.Module == "PatchMerger").Values.ToDictionary()["Hidden"]);
    }

    [Fact]
    public void Manifest_RoundTripsThroughJson()
    {
        var bytes = File.ReadAllBytes(Path.Combine(build.BuildDir, PtxManifest.FileName));
        Assert.Equal(bytes, PtxManifest.Parse(bytes, "manifest.json").ToJsonBytes());
    }

    [Theory]
    [InlineData("{", "is not valid JSON")]
    [InlineData("[]", "the manifest must be an object")]
    [InlineData("{\"format\": 1}", "manifest format 1 is not supported")]
    [InlineData("{\"format\": 2, \"ilgpuVersion\": \"1.5.3\", \"buildConfiguration\": \"Release\", \"architectures\": [\"sm_80\"], \"config\": null, \"modules\": [], \"kernels\": [{\"name\": 3}]}", "kernels[0].name must be a string")]
    public void MalformedManifest_IsOneLineNamingTheProblem(string json, string expected)
    {
        var e = Assert.Throws<AotException>(() => PtxManifest.Parse(System.Text.Encoding.UTF8.GetBytes(json), "m.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("m.json", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
