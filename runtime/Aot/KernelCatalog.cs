using System.Diagnostics.CodeAnalysis;
using System.Reflection;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// Every kernel the runtime may launch for a model, found by reflection: each public static method of the assembly's
/// shared generated kernel class <c>Qwen2VL.Generated.Kernels.GpuKernels</c> (every distinct kernel of every module,
/// inference and training, named by content; launched auto-grouped), the three generic GEMM kernels closed over each
/// generated epilogue struct in it, and the runtime's own kernels (the GEMMs with <see cref="NoEpilogue"/>, the three
/// attention kernels). The shared class is listed as the pseudo-module <see cref="SharedModule"/>; a [Module] whose
/// class still nests its own <c>GpuKernels</c> (an older generator) is listed under its name. Ordered by module, then
/// kernel name (ordinal).
/// </summary>
public static class KernelCatalog
{
    private const string Rooted = "Rooted in the trimmed bundle (TrimmerRootAssembly in models/qwen2vl/cli/Properties/PublishProfiles/linux-x64.pubxml): every member it reflects over is kept.";

    /// <summary>The attribute that marks DSL modules; matched by name because the runtime does not reference the DSL.</summary>
    public const string ModuleAttributeName = "Qwen2VL.Dsl.ModuleAttribute";

    /// <summary>The pseudo-module holding the runtime's own kernels.</summary>
    public const string RuntimeModule = "Runtime";

    /// <summary>The pseudo-module holding the generated kernels every module shares (the class <see cref="SharedKernelsType"/>).</summary>
    public const string SharedModule = "Kernels";

    /// <summary>The generated class holding each distinct kernel of an assembly's modules once.</summary>
    public const string SharedKernelsType = "Qwen2VL.Generated.Kernels";

    /// <summary>The kernels of every [Module] class in <paramref name="modelAssembly"/>, plus the runtime's.</summary>
    public static IReadOnlyList<AotKernel> FromAssembly(Assembly modelAssembly) => Build(ModuleTypes(modelAssembly));

    /// <summary>The types of <paramref name="assembly"/> marked [Module], ordered by full name.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = Rooted)]
    public static IReadOnlyList<Type> ModuleTypes(Assembly assembly) =>
        assembly.GetTypes()
            .Where(t => t.GetCustomAttributesData().Any(a => a.AttributeType.FullName == ModuleAttributeName))
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .ToArray();

    /// <summary>The kernels of the given [Module] classes, plus the runtime's.</summary>
    public static IReadOnlyList<AotKernel> Build(IEnumerable<Type> moduleTypes)
    {
        var kernels = new List<AotKernel>();
        var seen = new Dictionary<string, Type>(StringComparer.Ordinal);
        foreach (var module in moduleTypes)
        {
            if (!seen.TryAdd(module.Name, module) && seen[module.Name] != module)
                throw new AotException($"two [Module] classes are named {module.Name} ({seen[module.Name].FullName}, {module.FullName}); PTX file names need unique module names");
            kernels.AddRange(ModuleKernels(module));
        }
        foreach (var shared in SharedKernelTypes(seen.Values))
            kernels.AddRange(ModuleKernels(shared));
        kernels.AddRange(RuntimeKernels());
        foreach (var reserved in new[] { RuntimeModule, SharedModule })
            if (seen.ContainsKey(reserved))
                throw new AotException($"a [Module] class may not be named {reserved}: the name is reserved for the {(reserved == RuntimeModule ? "runtime's" : "shared generated")} kernels");
        return kernels
            .OrderBy(k => k.Module, StringComparer.Ordinal)
            .ThenBy(k => k.Name, StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>The generated-code hash of each module (kernels or not) and of the runtime's kernels, ordered by name.</summary>
    public static IReadOnlyList<PtxManifestModule> ModuleHashes(IEnumerable<Type> moduleTypes) =>
        moduleTypes.Concat(SharedKernelTypes(moduleTypes)).Select(m => new PtxManifestModule(m.Name, Generated(m).Hash))
            .Append(new PtxManifestModule(RuntimeModule, RuntimeHash()))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToArray();

    /// <summary>The shared kernel class of each assembly the modules come from (ordered by assembly name).</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = Rooted)]
    private static IEnumerable<Type> SharedKernelTypes(IEnumerable<Type> moduleTypes) =>
        moduleTypes.Select(m => m.Assembly).Distinct().OrderBy(a => a.FullName, StringComparer.Ordinal)
            .Select(a => a.GetType(SharedKernelsType)).OfType<Type>().ToArray();

    /// <summary>
    /// A module's (or the shared class's) GPU kernels and epilogues and its generated-code hash. A [Module] has no kernels
    /// of its own (they are in the shared class); its hash still covers its FusedGraph dump.
    /// </summary>
    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static (MethodInfo[] Methods, Type[] Epilogues, string Hash) Generated(Type module)
    {
        var gpu = module.GetNestedType("GpuKernels", BindingFlags.Public);
        var dump = module.GetField("FusedGraph", BindingFlags.Public | BindingFlags.Static);
        if (dump is null || !dump.IsLiteral || dump.GetRawConstantValue() is not string fusedGraph)
            throw new AotException($"[Module] {module.FullName} has no generated FusedGraph dump; was it built with Qwen2VL.Generator?");

        var methods = gpu?.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly) ?? [];
        var epilogues = gpu?.GetNestedTypes(BindingFlags.Public)
            .Where(t => t.IsValueType && typeof(IGemmEpilogue).IsAssignableFrom(t))
            .ToArray() ?? [];
        return (methods, epilogues, ModuleIdentity.ForModule(module, fusedGraph, methods, epilogues));
    }

    private static IEnumerable<AotKernel> ModuleKernels(Type module)
    {
        var (methods, epilogues, hash) = Generated(module);
        foreach (var method in methods)
            yield return new AotKernel(module.Name, method.Name, method, KernelGrouping.Implicit, hash);
        foreach (var epilogue in epilogues)
            foreach (var kernel in GemmKernels(module.Name, epilogue, hash, withCublasEpilogue: true))
                yield return kernel;
    }

    private static IEnumerable<AotKernel> RuntimeKernels()
    {
        var hash = RuntimeHash();
        // With cuBLAS a plain product needs no epilogue pass (ComputeContext.Gemm returns before launching it).
        foreach (var kernel in GemmKernels(RuntimeModule, typeof(NoEpilogue), hash, withCublasEpilogue: false))
            yield return kernel;
        yield return new AotKernel(RuntimeModule, "AttentionCausal", Static(typeof(AttentionKernels), nameof(AttentionKernels.Causal)), KernelGrouping.Implicit, hash);
        yield return new AotKernel(RuntimeModule, "AttentionCausalWarp", Static(typeof(AttentionWarpKernel), nameof(AttentionWarpKernel.Causal)), KernelGrouping.Explicit, hash);
        yield return new AotKernel(RuntimeModule, "AttentionSegments", Static(typeof(AttentionKernels), nameof(AttentionKernels.Segments)), KernelGrouping.Implicit, hash);
        // The masked scatter of vision rows into the token embeddings (inference prefill with images or videos).
        yield return new AotKernel(RuntimeModule, "VisionScatter", Static(typeof(VisionScatter), nameof(VisionScatter.ScatterKernel)), KernelGrouping.Implicit, hash);
        // bf16 weights (--dtype bf16, train --bf16): the token embedding gathered from a bf16 table, the backward
        // product dx = dy·W with a bf16 W, and AdamW writing the rounded compute weights. The other training kernels
        // of the runtime are not compiled ahead of time (forward --grads --no-jit stays refused on cuda).
        yield return new AotKernel(RuntimeModule, "GatherBf16Rows", Private(typeof(ComputeContext), "GatherKernel"), KernelGrouping.Implicit, hash);
        yield return new AotKernel(RuntimeModule, "GemmBackwardBf16", Static(typeof(GemmBackwardKernels), nameof(GemmBackwardKernels.StridedBf16)), KernelGrouping.Explicit, hash);
        yield return new AotKernel(RuntimeModule, "AdamWBf16", Private(typeof(Training.AdamW), "AdamWBf16Kernel"), KernelGrouping.Implicit, hash);
    }

    private static string RuntimeHash() =>
        ModuleIdentity.ForRuntime([typeof(GemmBlockedKernel), typeof(GemmSkinnyKernel), typeof(GemmEpilogueKernel), typeof(GemmBf16Kernels),
            typeof(AttentionKernels), typeof(AttentionWarpKernel), typeof(VisionScatter), typeof(ComputeContext), typeof(GemmBackwardKernels), typeof(Training.AdamW)]);

    /// <summary>
    /// The GEMM kernels exactly as <see cref="ComputeContext.Gemm{TEpilogue}"/> loads them for one epilogue type: f32
    /// weights (and the cuBLAS path's epilogue pass), and bf16 weights (<see cref="GemmBf16Kernels"/>, same launch shapes).
    /// </summary>
    [UnconditionalSuppressMessage("Trimming", "IL2060", Justification = Rooted)]
    private static IEnumerable<AotKernel> GemmKernels(string module, Type epilogue, string hash, bool withCublasEpilogue)
    {
        yield return new AotKernel(module, "GemmBlocked." + epilogue.Name,
            Static(typeof(GemmBlockedKernel), nameof(GemmBlockedKernel.Run)).MakeGenericMethod(epilogue), KernelGrouping.Explicit, hash);
        yield return new AotKernel(module, "GemmSkinny." + epilogue.Name,
            Static(typeof(GemmSkinnyKernel), nameof(GemmSkinnyKernel.Run)).MakeGenericMethod(epilogue), KernelGrouping.Explicit, hash);
        if (withCublasEpilogue)
            yield return new AotKernel(module, "GemmEpilogue." + epilogue.Name,
                Static(typeof(GemmEpilogueKernel), nameof(GemmEpilogueKernel.Run)).MakeGenericMethod(epilogue), KernelGrouping.Implicit, hash);
        yield return new AotKernel(module, "GemmBf16Blocked." + epilogue.Name,
            Static(typeof(GemmBf16Kernels), nameof(GemmBf16Kernels.Blocked)).MakeGenericMethod(epilogue), KernelGrouping.Explicit, hash);
        yield return new AotKernel(module, "GemmBf16Skinny." + epilogue.Name,
            Static(typeof(GemmBf16Kernels), nameof(GemmBf16Kernels.Skinny)).MakeGenericMethod(epilogue), KernelGrouping.Explicit, hash);
    }

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static MethodInfo Static(Type type, string name) =>
        type.GetMethod(name, BindingFlags.Public | BindingFlags.Static)
        ?? throw new InvalidOperationException($"{type.Name}.{name} not found");

    /// <summary>A kernel kept private to the class that launches it.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static MethodInfo Private(Type type, string name) =>
        type.GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)
        ?? throw new InvalidOperationException($"{type.Name}.{name} not found");
}
