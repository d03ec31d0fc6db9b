using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// How a model takes its GPU kernels: <see cref="Directory"/> is the output of <c>qwen2vl compile</c> (null: ILGPU
/// compiles every kernel at first launch); <see cref="NoJit"/> makes a kernel without PTX an error instead.
/// </summary>
public sealed record KernelOptions(string? Directory, bool NoJit)
{
    public static KernelOptions Jit { get; } = new(null, false);
}

/// <summary>
/// Applies <see cref="KernelOptions"/> to a freshly created device, before any kernel is loaded:
/// <list type="bullet">
/// <item>the manifest is read and checked against the current generated code (a stale one is refused whatever the
/// device), and every PTX file's sha256 against the manifest;</item>
/// <item>on <c>cuda</c>, each kernel's PTX for the GPU's architecture goes into ILGPU's kernel cache
/// (<see cref="IlgpuKernelCache"/>); kernels without PTX are compiled by ILGPU, or refused with <c>--no-jit</c>;</item>
/// <item>on <c>cpu</c> the kernels are the generated C# CPU kernels, compiled with the program: the PTX is not used
/// and <c>--no-jit</c> holds trivially;</item>
/// <item>on <c>ilgpu-cpu</c> ILGPU compiles every kernel from IL for its CPU simulator: the PTX is not used and
/// <c>--no-jit</c> is refused.</item>
/// </list>
/// Returns one line saying what was done, for the CLI to print.
/// </summary>
public static class KernelLoader
{
    public static string? Apply(ComputeContext context, KernelOptions options, IReadOnlyList<AotKernel> currentKernels)
    {
        if (options.Directory is null)
        {
            if (!options.NoJit) return null;
            return context.Kind switch
            {
                DeviceKind.Cpu => "kernels: --no-jit on the cpu device: its kernels are C# compiled with the program",
                DeviceKind.IlgpuCpu => throw NoJitOnSimulator(),
                _ => throw new AotException("--no-jit needs --kernels DIR (the output of qwen2vl compile) to take the kernels from"),
            };
        }

        var build = PrecompiledBuild.Open(options.Directory, currentKernels);
        var architectures = string.Join(", ", build.Manifest.Architectures);
        switch (context.Kind)
        {
            case DeviceKind.Cpu:
                return $"kernels: {options.Directory} checked ({architectures}); not used on the cpu device, whose kernels are C# compiled with the program";
            case DeviceKind.IlgpuCpu:
                if (options.NoJit) throw NoJitOnSimulator();
                return $"kernels: {options.Directory} checked ({architectures}); not used on ilgpu-cpu, which compiles every kernel from IL";
            case DeviceKind.Cuda:
            {
                var gpu = (CudaAccelerator)context.Accelerator;
                var deviceArchitecture = KernelLookup.ArchitectureName(gpu.Architecture.Major, gpu.Architecture.Minor);
                var plan = KernelLookup.Plan(build.Manifest, currentKernels, deviceArchitecture);
                if (options.NoJit) KernelLookup.RequireComplete(plan, options.Directory);
                var seeded = IlgpuKernelCache.Seed(gpu, plan.Precompiled.Select(k => (k.Kernel, k.Entry!, build.ReadPtx(k.Entry!))));
                context.KeepAlive(seeded);
                return KernelLookup.Summary(plan, options.Directory);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(context), context.Kind, null);
        }
    }

    private static AotException NoJitOnSimulator() =>
        new("--no-jit: the ilgpu-cpu device compiles every kernel from IL at run time; use --device cuda (with --kernels) or cpu");
}

/// <summary>A <c>qwen2vl compile</c> output folder whose manifest matches the current code and whose files match the manifest.</summary>
public sealed class PrecompiledBuild
{
    private PrecompiledBuild(string directory, PtxManifest manifest)
    {
        Directory = directory;
        Manifest = manifest;
    }

    public string Directory { get; }

    public PtxManifest Manifest { get; }

    /// <summary>Reads and checks the build; every problem is a one-line <see cref="AotException"/>.</summary>
    public static PrecompiledBuild Open(string directory, IReadOnlyList<AotKernel> currentKernels)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new AotException($"--kernels folder not found: {directory}");
        var manifest = PtxManifest.Load(directory);
        ManifestValidator.CheckPresent(manifest, currentKernels);
        foreach (var architecture in manifest.Architectures)
            ManifestValidator.CheckFiles(manifest, directory, architecture);
        return new PrecompiledBuild(directory, manifest);
    }

    public string ReadPtx(PtxManifestKernel entry) => File.ReadAllText(ManifestValidator.ResolveFile(Directory, entry.File));
}
