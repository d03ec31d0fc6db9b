using System.Globalization;

namespace Qwen2VL.Runtime.Aot;

/// <summary>One kernel the runtime may launch and the manifest entry whose PTX it will use (none: ILGPU compiles it).</summary>
public sealed record KernelChoice(AotKernel Kernel, PtxManifestKernel? Entry);

/// <summary>
/// Which PTX each kernel takes on one GPU: the architecture picked from the build (none when the build has no
/// architecture the GPU can run) and, per kernel of the current code, its manifest entry or nothing.
/// </summary>
public sealed record KernelPlan(string DeviceArchitecture, string? Architecture, IReadOnlyList<KernelChoice> Kernels)
{
    public IReadOnlyList<AotKernel> Missing => Kernels.Where(k => k.Entry is null).Select(k => k.Kernel).ToArray();

    public IReadOnlyList<KernelChoice> Precompiled => Kernels.Where(k => k.Entry is not null).ToArray();
}

/// <summary>
/// The loader's decisions as pure functions of the manifest, the current kernels and the GPU's architecture, so that
/// they are tested without a GPU. PTX compiled for an older architecture runs on a newer GPU (the driver turns it into
/// the GPU's machine code), never the other way round: a GPU takes the newest built architecture not above its own.
/// </summary>
public static class KernelLookup
{
    /// <summary><c>sm_90</c> → 90; an unrecognised name is an <see cref="AotException"/>.</summary>
    public static int SmNumber(string architecture) =>
        architecture.StartsWith("sm_", StringComparison.Ordinal)
        && int.TryParse(architecture.AsSpan(3), NumberStyles.None, CultureInfo.InvariantCulture, out int sm)
            ? sm
            : throw new AotException($"'{architecture}' is not an architecture name like sm_80");

    /// <summary>The name of a compute capability: (8, 6) → <c>sm_86</c>.</summary>
    public static string ArchitectureName(int major, int minor) => $"sm_{major}{minor}";

    /// <summary>The newest of <paramref name="built"/> that a <paramref name="deviceArchitecture"/> GPU can run, or null.</summary>
    public static string? ChooseArchitecture(IEnumerable<string> built, string deviceArchitecture)
    {
        int device = SmNumber(deviceArchitecture);
        return built.Select(a => (Name: a, Sm: SmNumber(a)))
            .Where(a => a.Sm <= device)
            .OrderByDescending(a => a.Sm)
            .Select(a => a.Name)
            .FirstOrDefault();
    }

    /// <summary>Pairs every current kernel with its entry for the chosen architecture (entries are matched by module and name).</summary>
    public static KernelPlan Plan(PtxManifest manifest, IReadOnlyList<AotKernel> currentKernels, string deviceArchitecture)
    {
        var architecture = ChooseArchitecture(manifest.Architectures, deviceArchitecture);
        var entries = manifest.Kernels
            .Where(k => k.Architecture == architecture)
            .GroupBy(k => k.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        return new KernelPlan(deviceArchitecture, architecture,
            currentKernels.Select(k => new KernelChoice(k, entries.GetValueOrDefault(k.Key))).ToArray());
    }

    /// <summary>With <c>--no-jit</c>: a kernel without PTX for this GPU is an error naming the kernel and the architecture.</summary>
    public static void RequireComplete(KernelPlan plan, string directory)
    {
        var missing = plan.Missing;
        if (missing.Count == 0) return;
        if (plan.Architecture is null)
            throw new AotException($"--no-jit: {directory} has no PTX a {plan.DeviceArchitecture} GPU can run (kernel {missing[0].Key} needs {plan.DeviceArchitecture} or older; the build has only newer architectures); recompile with qwen2vl compile --arch {NearestSupported(plan.DeviceArchitecture)}");
        throw new AotException($"--no-jit: kernel {missing[0].Key} has no {plan.Architecture} PTX in {directory}" +
                               (missing.Count > 1 ? $" ({missing.Count - 1} more kernels missing)" : "") +
                               "; recompile with qwen2vl compile");
    }

    /// <summary>One line on what happens to the kernels without PTX (ILGPU compiles them at first launch).</summary>
    public static string Summary(KernelPlan plan, string directory)
    {
        int precompiled = plan.Precompiled.Count;
        if (plan.Missing.Count == 0)
            return $"kernels: all {precompiled} from {plan.Architecture} PTX in {directory} on this {plan.DeviceArchitecture} GPU (no JIT)";
        var missing = plan.Missing;
        var reason = plan.Architecture is null ? $"{directory} has no PTX a {plan.DeviceArchitecture} GPU can run" : $"{missing.Count} kernels have no {plan.Architecture} PTX in {directory}";
        return $"kernels: {precompiled} from PTX, {missing.Count} JIT-compiled by ILGPU ({reason}, first {missing[0].Key})";
    }

    private static string NearestSupported(string deviceArchitecture) =>
        PtxTarget.SupportedNames.Where(a => SmNumber(a) <= SmNumber(deviceArchitecture)).LastOrDefault() ?? PtxTarget.SupportedNames[0];
}
