using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime.Aot;

/// <summary>One kernel compiled to PTX for one architecture.</summary>
public sealed record CompiledPtx(AotKernel Kernel, PtxTarget Target, string Ptx, string EntryPoint, int SharedMemoryBytes);

/// <summary>
/// Compiles kernels to PTX with ILGPU's PTX backend directly, so no GPU or CUDA driver is needed. Each kernel is
/// compiled in a fresh ILGPU context configured as <see cref="ComputeContext"/> configures its CUDA context
/// (algorithms enabled, default optimisation), with the entry point the runtime's loader would build.
/// </summary>
public static class PtxCompiler
{
    public static CompiledPtx Compile(AotKernel kernel, PtxTarget target)
    {
        // A fresh context per kernel: ILGPU numbers IR values per context, so compiling kernels one after another in
        // one context would make a kernel's PTX depend on what was compiled before it.
        using var context = Context.Create(builder => builder.EnableAlgorithms());
        using var backend = new PTXBackend(context, new CudaCapabilityContext(target.Architecture), target.Architecture,
            target.InstructionSet, nvvmAPI: null);
        var entry = kernel.Grouping == KernelGrouping.Implicit
            ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty);
        return new CompiledPtx(kernel, target, PtxText.Canonicalize(compiled.PTXAssembly, target, compiled.Name), compiled.Name,
            PtxText.StaticSharedBytes(compiled.PTXAssembly));
    }
}
