using System.CommandLine;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>--device cpu|cuda|ilgpu-cpu</c>, shared by every command that runs the model. Left out, it is what the README
/// promises: CUDA when a GPU is visible, else the CPU (<see cref="ComputeContext.DefaultKind"/>).
/// </summary>
internal static class DeviceOption
{
    public const string Help = "cpu, cuda or ilgpu-cpu. Default: cuda when a GPU is visible, else cpu.";

    public static Option<string?> Create() => new("--device") { Description = Help };

    public static DeviceKind Read(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) is { } name ? DeviceKinds.Parse(name) : ComputeContext.DefaultKind();
}
