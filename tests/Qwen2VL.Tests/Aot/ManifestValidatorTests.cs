using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary>A manifest built from other code (a changed hash, a missing kernel, another ILGPU) is refused in one line.</summary>
[Collection(CompiledModelCollection.Name)]
public sealed class ManifestValidatorTests(CompiledModel build)
{
    private static readonly string LayerNormKey = "Kernels." + CompiledModel.Kernel("LayerNorm");
    private static readonly string RotaryKey = "Kernels." + CompiledModel.Kernel("VisionRotary");

    private PtxManifest Manifest => build.Manifest ?? throw new InvalidOperationException("compile failed: " + build.Error);

    private static IReadOnlyList<AotKernel> Current => KernelCatalog.FromAssembly(CompiledModel.ModelAssembly);

    [Fact]
    public void FreshManifest_IsAccepted()
    {
        ManifestValidator.Check(Manifest, Current);
        ManifestValidator.Check(Manifest, Current, "sm_90");
        ManifestValidator.CheckFiles(Manifest, build.BuildDir, "sm_80");
    }

    [Fact]
    public void EditedHash_IsRefused_NamingTheKernelAndBothHashes()
    {
        const string stale = "0000000000000000000000000000000000000000000000000000000000000000";
        var target = Manifest.Kernels.First(k => k.Key == RotaryKey && k.Architecture == "sm_80");
        var edited = Manifest with { Kernels = Manifest.Kernels.Select(k => k == target ? k with { GeneratedCodeHash = stale } : k).ToArray() };

        var e = Assert.Throws<AotException>(() => ManifestValidator.Check(edited, Current));
        Assert.Contains(RotaryKey, e.Message);
        Assert.Contains(stale, e.Message);
        Assert.Contains(target.GeneratedCodeHash, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void EditedHashInTheFile_IsRefusedAfterLoading()
    {
        var json = File.ReadAllText(Path.Combine(build.BuildDir, PtxManifest.FileName));
        var hash = Manifest.Modules.Single(m => m.Name == "Kernels").GeneratedCodeHash;
        var field = $"\"generatedCodeHash\": \"{hash}\"";
        var index = json.IndexOf(field, json.IndexOf("\"kernels\"", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.True(index > 0);
        var stale = (hash[0] == '0' ? "1" : "0") + hash[1..];
        var edited = json[..index] + field.Replace(hash, stale) + json[(index + field.Length)..];
        var e = Assert.Throws<AotException>(() => ManifestValidator.Check(PtxManifest.Parse(System.Text.Encoding.UTF8.GetBytes(edited), "edited.json"), Current));
        Assert.Contains("Kernels.", e.Message);
        Assert.Contains(stale, e.Message);
        Assert.Contains(hash, e.Message);
    }

    [Fact]
    public void MissingKernel_IsRefused()
    {
        var edited = Manifest with { Kernels = Manifest.Kernels.Where(k => !(k.Key == "Runtime.AttentionCausal" && k.Architecture == "sm_90")).ToArray() };
        var e = Assert.Throws<AotException>(() => ManifestValidator.Check(edited, Current));
        Assert.Contains("Runtime.AttentionCausal (sm_90) is missing", e.Message);
    }

    [Fact]
    public void OtherIlgpuVersion_OrArchitecture_IsRefused()
    {
        var e = Assert.Throws<AotException>(() => ManifestValidator.Check(Manifest with { IlgpuVersion = "1.5.2" }, Current));
        Assert.Contains("ILGPU 1.5.2", e.Message);
        e = Assert.Throws<AotException>(() => ManifestValidator.Check(Manifest with { Architectures = ["sm_80"] }, Current, "sm_90"));
        Assert.Contains("no sm_90 build", e.Message);
    }

    [Fact]
    public void ModifiedPtxFile_IsRefused()
    {
        var copy = Path.Combine(build.Root, "tampered");
        foreach (var file in Directory.GetFiles(build.BuildDir, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(copy, Path.GetRelativePath(build.BuildDir, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }
        var victim = Path.Combine(copy, "sm_80", LayerNormKey + ".ptx");
        File.AppendAllText(victim, "// edited\n");
        var e = Assert.Throws<AotException>(() => ManifestValidator.CheckFiles(Manifest, copy, "sm_80"));
        Assert.Contains(LayerNormKey, e.Message);
        Assert.Throws<AotException>(() => ManifestValidator.ResolveFile(copy, "../outside.ptx"));
    }
}
