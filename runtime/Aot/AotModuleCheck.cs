namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// Decides whether an ahead-of-time build still matches the code being run. A kernel whose generated-code hash
/// differs from the manifest's, or which the manifest lacks, means the PTX was compiled from other code: loading it
/// could launch a kernel with another signature or meaning, so the whole manifest is refused.
/// </summary>
public static class ManifestValidator
{
    /// <summary>Checks every architecture of the manifest against <paramref name="currentKernels"/>.</summary>
    public static void Check(PtxManifest manifest, IReadOnlyList<AotKernel> currentKernels)
    {
        foreach (var architecture in manifest.Architectures)
            Check(manifest, currentKernels, architecture);
    }

    /// <summary>Checks one architecture (the GPU's); throws a one-line <see cref="AotException"/> on the first mismatch.</summary>
    public static void Check(PtxManifest manifest, IReadOnlyList<AotKernel> currentKernels, string architecture)
    {
        const string fix = "recompile with qwen2vl compile";
        var current = AotBuild.IlgpuVersion();
        if (manifest.IlgpuVersion != current)
            throw new AotException($"PTX manifest was compiled with ILGPU {manifest.IlgpuVersion}, this runtime uses ILGPU {current}; {fix}");
        if (!manifest.Architectures.Contains(architecture, StringComparer.Ordinal))
            throw new AotException($"PTX manifest has no {architecture} build (it has {string.Join(", ", manifest.Architectures)}); {fix} --arch {architecture}");

        var entries = new Dictionary<string, PtxManifestKernel>(StringComparer.Ordinal);
        foreach (var entry in manifest.Kernels.Where(k => k.Architecture == architecture))
            if (!entries.TryAdd(entry.Key, entry))
                throw new AotException($"PTX manifest lists kernel {entry.Key} twice for {architecture}");

        foreach (var kernel in currentKernels)
        {
            if (!entries.TryGetValue(kernel.Key, out var entry))
                throw new AotException($"PTX manifest is stale: kernel {kernel.Key} ({architecture}) is missing (current generated-code hash {kernel.GeneratedCodeHash}, manifest hash none); {fix}");
            if (entry.GeneratedCodeHash != kernel.GeneratedCodeHash)
                throw new AotException($"PTX manifest is stale: kernel {kernel.Key} ({architecture}) was compiled from generated-code hash {entry.GeneratedCodeHash}, the current hash is {kernel.GeneratedCodeHash}; {fix}");
            if (!entry.ParameterTypes.SequenceEqual(kernel.ParameterTypes, StringComparer.Ordinal))
                throw new AotException($"PTX manifest is stale: kernel {kernel.Key} ({architecture}) takes ({string.Join(", ", entry.ParameterTypes)}), the current code ({string.Join(", ", kernel.ParameterTypes)}); {fix}");
        }
    }

    /// <summary>
    /// The check made when a build is loaded: every entry the manifest has must match the current code (the ILGPU
    /// version, each module's generated-code hash, each kernel's parameter types), or the whole build is refused as
    /// stale. A kernel or architecture the manifest lacks is not staleness: <see cref="KernelLookup"/> decides about it
    /// (ILGPU compiles it, or <c>--no-jit</c> refuses).
    /// </summary>
    public static void CheckPresent(PtxManifest manifest, IReadOnlyList<AotKernel> currentKernels)
    {
        const string fix = "recompile with qwen2vl compile";
        var current = AotBuild.IlgpuVersion();
        if (manifest.IlgpuVersion != current)
            throw new AotException($"PTX manifest was compiled with ILGPU {manifest.IlgpuVersion}, this runtime uses ILGPU {current}; {fix}");
        var hashes = currentKernels.GroupBy(k => k.Module, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().GeneratedCodeHash, StringComparer.Ordinal);
        foreach (var module in manifest.Modules)
            if (hashes.TryGetValue(module.Name, out var hash) && hash != module.GeneratedCodeHash)
                throw new AotException($"PTX manifest is stale: module {module.Name} was compiled from generated-code hash {module.GeneratedCodeHash}, the current hash is {hash}; {fix}");
        var byKey = currentKernels.ToDictionary(k => k.Key, StringComparer.Ordinal);
        var seen = new HashSet<(string, string)>();
        foreach (var entry in manifest.Kernels)
        {
            if (!seen.Add((entry.Key, entry.Architecture)))
                throw new AotException($"PTX manifest lists kernel {entry.Key} twice for {entry.Architecture}");
            if (!byKey.TryGetValue(entry.Key, out var kernel))
                continue; // a kernel the code no longer has: its module's hash differs (checked above) or it is never launched
            if (entry.GeneratedCodeHash != kernel.GeneratedCodeHash)
                throw new AotException($"PTX manifest is stale: kernel {kernel.Key} ({entry.Architecture}) was compiled from generated-code hash {entry.GeneratedCodeHash}, the current hash is {kernel.GeneratedCodeHash}; {fix}");
            if (!entry.ParameterTypes.SequenceEqual(kernel.ParameterTypes, StringComparer.Ordinal))
                throw new AotException($"PTX manifest is stale: kernel {kernel.Key} ({entry.Architecture}) takes ({string.Join(", ", entry.ParameterTypes)}), the current code ({string.Join(", ", kernel.ParameterTypes)}); {fix}");
            var grouping = kernel.Grouping == KernelGrouping.Implicit ? "implicit" : "explicit";
            if (entry.Grouping != grouping)
                throw new AotException($"PTX manifest is stale: kernel {kernel.Key} ({entry.Architecture}) was compiled {entry.Grouping}ly grouped, the runtime launches it {grouping}ly grouped; {fix}");
        }
    }

    /// <summary>Checks that each PTX file of <paramref name="architecture"/> exists under <paramref name="directory"/> with the manifest's sha256.</summary>
    public static void CheckFiles(PtxManifest manifest, string directory, string architecture)
    {
        foreach (var entry in manifest.Kernels.Where(k => k.Architecture == architecture))
        {
            var path = ResolveFile(directory, entry.File);
            if (!File.Exists(path))
                throw new AotException($"PTX file of kernel {entry.Key} not found: {path}");
            var hash = ModuleIdentity.Sha256(File.ReadAllBytes(path));
            if (hash != entry.Sha256)
                throw new AotException($"PTX file {path} of kernel {entry.Key} has sha256 {hash}, the manifest says {entry.Sha256}; the build folder was modified");
        }
    }

    /// <summary>The path of a manifest file entry, refusing entries that would leave the build folder.</summary>
    public static string ResolveFile(string directory, string relative)
    {
        var root = Path.GetFullPath(directory);
        var path = Path.GetFullPath(Path.Combine(root, relative.Replace('/', Path.DirectorySeparatorChar)));
        if (!path.StartsWith(Path.TrimEndingDirectorySeparator(root) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new AotException($"PTX manifest entry {relative} points outside the build folder {directory}");
        return path;
    }
}
