using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// A GPU architecture to compile for (<c>sm_80</c> Ampere, <c>sm_90</c> Hopper) and the PTX ISA version used for it.
/// The ISA is the one ILGPU's own selection (<see cref="CudaAccelerator.GetInstructionSet"/>) picks on the oldest
/// driver that supports the architecture, so the files load on every driver that can run that GPU.
/// </summary>
public sealed class PtxTarget
{
    private static readonly (string Name, CudaArchitecture Architecture)[] Known =
    [
        ("sm_80", CudaArchitecture.SM_80),
        ("sm_90", CudaArchitecture.SM_90),
    ];

    private PtxTarget(string name, CudaArchitecture architecture)
    {
        Name = name;
        Architecture = architecture;
        InstructionSet = CudaAccelerator.GetInstructionSet(architecture, CudaDriverVersionUtils.GetMinimumDriverVersion(architecture));
    }

    /// <summary>The architecture names accepted by <see cref="Parse"/>.</summary>
    public static IReadOnlyList<string> SupportedNames { get; } = Known.Select(k => k.Name).ToArray();

    /// <summary><c>sm_80</c> or <c>sm_90</c>: the folder name and the <c>.target</c> written into the PTX.</summary>
    public string Name { get; }

    public CudaArchitecture Architecture { get; }

    public CudaInstructionSet InstructionSet { get; }

    /// <summary>The PTX ISA version as written after <c>.version</c> (<c>7.0</c>).</summary>
    public string IsaVersion => $"{InstructionSet.Major}.{InstructionSet.Minor}";

    public static PtxTarget Parse(string name)
    {
        foreach (var (known, architecture) in Known)
            if (string.Equals(name, known, StringComparison.Ordinal))
                return new PtxTarget(known, architecture);
        throw new AotException($"unknown architecture '{name}': supported are {string.Join(", ", SupportedNames)}");
    }

    public override string ToString() => Name;
}
