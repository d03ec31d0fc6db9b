using System.Collections.Generic;
using System.Linq;

namespace Qwen2VL.Generator.Emit;

internal enum ParamKind { Tensor, IntTensor, Int, Float }

/// <summary>A kernel parameter and the host expression passed for it.</summary>
internal sealed record KernelParam(string Name, ParamKind Kind, string HostValue);

/// <summary>
/// One generated kernel in both forms: the ILGPU body (one thread per index) and the CPU body (a method over
/// DeviceTensors). The host launches the GPU form over <see cref="Extent"/> or calls the CPU form.
/// </summary>
internal sealed class KernelSpec
{
    public KernelSpec(string name, IEnumerable<string> comment, string extent)
    {
        Name = name;
        Comment = comment.ToList();
        Extent = extent;
    }

    public string Name { get; }
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
