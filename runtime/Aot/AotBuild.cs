using System.Reflection;
using System.Text;

namespace Qwen2VL.Runtime.Aot;

/// <summary>The files of an ahead-of-time build (relative path → bytes, manifest.json included) and its manifest.</summary>
public sealed record AotOutput(PtxManifest Manifest, IReadOnlyDictionary<string, byte[]> Files);

/// <summary>
/// <c>qwen2vl compile</c>: every kernel of the model compiled to PTX for each requested architecture, laid out as
/// <c>&lt;arch&gt;/&lt;Module&gt;.&lt;Kernel&gt;.ptx</c> plus <c>manifest.json</c>, byte-identical for the same sources.
/// </summary>
public static class AotBuild
{
    /// <summary>Compiles in memory; nothing is written.</summary>
    public static AotOutput Compile(IReadOnlyList<Type> moduleTypes, IReadOnlyList<PtxTarget> targets, AotConfig? config)
    {
        if (targets.Count == 0) throw new AotException("give at least one --arch");
        var kernels = KernelCatalog.Build(moduleTypes);
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        var entries = new List<PtxManifestKernel>();
        foreach (var target in targets.DistinctBy(t => t.Name).OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            foreach (var kernel in kernels)
            {
                var compiled = PtxCompiler.Compile(kernel, target);
                var bytes = Encoding.UTF8.GetBytes(compiled.Ptx);
                var file = target.Name + "/" + kernel.FileName;
                files.Add(file, bytes);
                entries.Add(new PtxManifestKernel(
                    kernel.Name, kernel.Module, target.Name, PtxText.Target(compiled.Ptx)!, target.IsaVersion, file,
                    ModuleIdentity.Sha256(bytes), compiled.EntryPoint,
                    kernel.Grouping == KernelGrouping.Implicit ? "implicit" : "explicit", compiled.SharedMemoryBytes,
                    kernel.ParameterTypes, SpecializationConstants: [], kernel.GeneratedCodeHash));
            }
        }
        var manifest = new PtxManifest(
            PtxManifest.CurrentFormat,
            IlgpuVersion(),
            BuildConfiguration(moduleTypes),
            targets.Select(t => t.Name).Distinct().Order(StringComparer.Ordinal).ToArray(),
            config?.ToManifest(moduleTypes),
            KernelCatalog.ModuleHashes(moduleTypes),
            entries.OrderBy(e => e.Architecture, StringComparer.Ordinal)
                .ThenBy(e => e.Module, StringComparer.Ordinal)
                .ThenBy(e => e.Name, StringComparer.Ordinal)
                .ToArray());
        files.Add(PtxManifest.FileName, manifest.ToJsonBytes());
        return new AotOutput(manifest, files);
    }

    /// <summary>Compiles and writes <paramref name="outputDirectory"/> atomically (replacing a previous build there).</summary>
    public static PtxManifest Run(IReadOnlyList<Type> moduleTypes, IReadOnlyList<PtxTarget> targets, AotConfig? config, string outputDirectory)
    {
        var output = Compile(moduleTypes, targets, config);
        AtomicDirectory.Write(outputDirectory, output.Files, PtxManifest.FileName);
        return output.Manifest;
    }

    /// <summary>
    /// The build configuration of the assemblies whose IL is compiled (<c>Release</c>), or both when the model's and
    /// the runtime's differ (<c>model Debug, runtime Release</c>).
    /// </summary>
    public static string BuildConfiguration(IEnumerable<Type> moduleTypes)
    {
        static string Of(Assembly a) =>
            a.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration is { Length: > 0 } c ? c : "unknown";
        var runtime = Of(typeof(AotBuild).Assembly);
        var models = moduleTypes.Select(t => Of(t.Assembly)).Distinct().Order(StringComparer.Ordinal).ToArray();
        return models.All(m => m == runtime) ? runtime : $"model {string.Join("+", models)}, runtime {runtime}";
    }

    /// <summary>The ILGPU version the PTX was generated with (also written in each file's header).</summary>
    public static string IlgpuVersion() =>
        typeof(ILGPU.Context).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "unknown";
}
