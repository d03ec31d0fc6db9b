using System.Collections.Generic;
using System.Linq;

namespace Qwen2VL.Generator.Emit;

internal enum ParamKind { Tensor, IntTensor, Int, Float }

/// <summary>A kernel parameter and the host expression passed for it.</summary>
internal sealed record KernelParam(string Name, ParamKind Kind, string HostValue);

/// <summary>
/// One generated kernel in both forms: the ILGPU body (one thread per index) and the CPU body (a method over
/// DeviceTensors). The host launches the GPU form over <see cref="Extent"/> or calls the CPU form. <see cref="UseName"/>
/// names the use (group or gradient rule) in comments; <see cref="Name"/> is the kernel's identity by content
/// (<see cref="KernelIdentity"/>), under which the shared kernel file emits it once.
/// </summary>
internal sealed class KernelSpec
{
    public KernelSpec(string useName, IEnumerable<string> comment, string extent)
    {
        UseName = useName;
        Comment = comment.ToList();
        Extent = extent;
    }

    public string UseName { get; }

    /// <summary>The kernel's name by content: its stem and a hash of its normalised bodies and signatures.</summary>
    public string Name
    {
        get
        {
            var (gpu, cpu) = Normalised;
            return KernelIdentity.Name(KernelIdentity.Stem(UseName),
                GpuSignature + "\n" + string.Join("\n", gpu) + "\n--\n" + CpuSignature + "\n" + string.Join("\n", cpu));
        }
    }

    /// <summary>The bodies with graph value numbers renumbered (what is emitted and what identifies the kernel).</summary>
    public (List<string> Gpu, List<string> Cpu) Normalised
    {
        get
        {
            var parts = KernelIdentity.Normalise(GpuBody, CpuBody);
            return (parts[0], parts[1]);
        }
    }
    public List<string> Comment { get; }
    /// <summary>Host C# for the number of GPU threads.</summary>
    public string Extent { get; }
    public List<KernelParam> Params { get; } = new();
    public List<string> GpuBody { get; } = new();
    public List<string> CpuBody { get; } = new();

    public string GpuSignature =>
        "Index1D index, " + string.Join(", ", Params.Select(p => GpuType(p.Kind) + " " + p.Name));

    public string CpuSignature => string.Join(", ", Params.Select(p => CpuType(p.Kind) + " " + p.Name));

    public string GpuTypeArguments => "Index1D, " + string.Join(", ", Params.Select(p => GpuType(p.Kind)));

    public static string GpuType(ParamKind kind) => kind switch
    {
        ParamKind.Tensor => "ArrayView<float>",
        ParamKind.IntTensor => "ArrayView<int>",
        ParamKind.Int => "int",
        _ => "float",
    };

    private static string CpuType(ParamKind kind) => kind switch
    {
        ParamKind.Tensor or ParamKind.IntTensor => "DeviceTensor",
        ParamKind.Int => "int",
        _ => "float",
    };
}
