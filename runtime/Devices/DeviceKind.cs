namespace Qwen2VL.Runtime;

/// <summary>
/// Where the model runs. <see cref="Cpu"/> uses the generated CPU kernels (no ILGPU); <see cref="IlgpuCpu"/>
/// runs the GPU kernels on ILGPU's CPU simulator (slow, for testing them without a GPU); <see cref="Cuda"/>
/// runs them on an NVIDIA GPU.
/// </summary>
public enum DeviceKind { Cpu, IlgpuCpu, Cuda }

public static class DeviceKinds
{
    /// <summary>Parses the CLI spelling: "cpu", "ilgpu-cpu" or "cuda" (case-insensitive).</summary>
    public static DeviceKind Parse(string s) => s.Trim().ToLowerInvariant() switch
    {
        "cpu" => DeviceKind.Cpu,
        "ilgpu-cpu" => DeviceKind.IlgpuCpu,
        "cuda" => DeviceKind.Cuda,
        _ => throw new ModelException($"unknown device '{s}'; use cpu, cuda or ilgpu-cpu"),
    };

    public static string Name(this DeviceKind kind) => kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.IlgpuCpu => "ilgpu-cpu",
        DeviceKind.Cuda => "cuda",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}
