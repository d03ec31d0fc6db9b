using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// Puts precompiled PTX into ILGPU's per-accelerator cache of compiled kernels, so that every kernel load the code
/// makes — the generated runners' <c>LoadAutoGroupedStreamKernel</c>, the runtime's GEMM and attention loads —
/// finds its <see cref="PTXCompiledKernel"/> there instead of compiling the method. ILGPU then does what it does
/// with PTX it compiled itself: <c>cuModuleLoadDataEx</c>, <c>cuModuleGetFunction</c> (the manifest's entry point)
/// and, per launch, <c>cuLaunchKernel</c> with its own argument layout (the extent of an auto-grouped kernel as the
/// first <c>.b32</c> parameter, each <c>ArrayView</c> as a 16-byte {pointer, length} struct, structs by value).
/// Because the launch code and the PTX both come from the same ILGPU version (the manifest refuses any other), the
/// layouts agree by construction rather than by a second, hand-written copy of ILGPU's conventions.
/// </summary>
/// <remarks>
/// ILGPU 1.5.3 has no public way to hand it a compiled kernel for a method (its <see cref="PTXCompiledKernel"/>
/// constructor is internal and the cache is private), so this reaches both by reflection, naming every member it
/// needs and failing with one line when one is absent. ILGPU's assemblies are rooted when publishing trimmed
/// (<c>TrimmerRootAssembly</c>), so these members survive trimming. NOT RUN ON A GPU: only the ILGPU CPU
/// accelerator has exercised the cache reading here; seeding CUDA kernels awaits a GPU.
/// </remarks>
[UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "ILGPU and ILGPU.Algorithms are TrimmerRootAssembly in the publish profile: their private members are kept.")]
[UnconditionalSuppressMessage("Trimming", "IL2080", Justification = "ILGPU and ILGPU.Algorithms are TrimmerRootAssembly in the publish profile: their private members are kept.")]
public static class IlgpuKernelCache
{
    private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;

    /// <summary>
    /// Adds one <see cref="PTXCompiledKernel"/> per (kernel, PTX text) to the accelerator's cache. ILGPU holds its
    /// cache entries weakly: keep the returned objects alive as long as the accelerator.
    /// </summary>
    public static IReadOnlyList<CompiledKernel> Seed(Accelerator accelerator, IEnumerable<(AotKernel Kernel, PtxManifestKernel Entry, string Ptx)> kernels)
    {
        var cache = Cache(accelerator)
            ?? throw new AotException("ILGPU's kernel cache is disabled in this context (CachingMode); precompiled PTX cannot be used");
        var keyConstructor = KeyType().GetConstructor([typeof(EntryPointDescription), typeof(KernelSpecialization)])
                             ?? KeyType().GetConstructors().Single();
        var compiledConstructor = typeof(PTXCompiledKernel).GetConstructor(Private,
                                      [typeof(Context), typeof(EntryPoint), typeof(CompiledKernel.KernelInfo), typeof(string)])
                                  ?? throw Missing("the PTXCompiledKernel(Context, EntryPoint, KernelInfo, string) constructor");
        var syncRoot = SyncRoot(accelerator);
        var kept = new List<CompiledKernel>();
        lock (syncRoot)
        {
            foreach (var (kernel, entry, ptx) in kernels)
            {
                var description = Description(kernel);
                if (description.Name != entry.EntryPoint)
                    throw new AotException($"PTX of kernel {kernel.Key} declares entry point {entry.EntryPoint}, ILGPU names it {description.Name}; recompile with qwen2vl compile");
                var entryPoint = new EntryPoint(description, new SharedMemorySpecification(entry.SharedMemoryBytes, hasDynamicMemory: false), KernelSpecialization.Empty);
                var compiled = (CompiledKernel)compiledConstructor.Invoke([accelerator.Context, entryPoint, null, ptx]);
                var key = keyConstructor.Invoke([description, KernelSpecialization.Empty]);
                cache[key] = new WeakReference<CompiledKernel>(compiled);
                kept.Add(compiled);
            }
        }
        return kept;
    }

    /// <summary>The kernel methods in the accelerator's compiled-kernel cache: what ILGPU has compiled (or been given) so far.</summary>
    public static IReadOnlyList<(MethodInfo Method, bool ImplicitlyGrouped)> CompiledMethods(Accelerator accelerator)
    {
        var cache = Cache(accelerator) ?? throw new AotException("ILGPU's kernel cache is disabled in this context (CachingMode)");
        var entryProperty = KeyType().GetProperty("Entry") ?? throw Missing("CachedCompiledKernelKey.Entry");
        var syncRoot = SyncRoot(accelerator);
        lock (syncRoot)
        {
            return cache.Keys.Cast<object>()
                .Select(key => (EntryPointDescription)entryProperty.GetValue(key)!)
                .Select(d => (d.MethodSource, d.IndexType != IndexType.KernelConfig))
                .ToArray();
        }
    }

    /// <summary>The entry point ILGPU builds for a kernel loaded as the runtime loads it (see <see cref="KernelGrouping"/>).</summary>
    public static EntryPointDescription Description(AotKernel kernel) =>
        kernel.Grouping == KernelGrouping.Implicit
            ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method);

    private static IDictionary? Cache(Accelerator accelerator)
    {
        var field = typeof(Accelerator).GetField("compiledKernelCache", Private) ?? throw Missing("Accelerator.compiledKernelCache");
        return (IDictionary?)field.GetValue(accelerator);
    }

    private static Type KeyType() =>
        typeof(Accelerator).GetNestedType("CachedCompiledKernelKey", BindingFlags.NonPublic) ?? throw Missing("Accelerator.CachedCompiledKernelKey");

    /// <summary>The accelerator's own lock over its kernel cache; a fresh object would not exclude ILGPU's own writers.</summary>
    private static object SyncRoot(Accelerator accelerator) =>
        typeof(Accelerator).GetField("syncRoot", Private)?.GetValue(accelerator) ?? throw Missing("Accelerator.syncRoot");

    private static AotException Missing(string what) =>
        new($"this ILGPU ({AotBuild.IlgpuVersion()}) has no {what}; precompiled PTX needs ILGPU 1.5.3's internals — run without --kernels");
}
