using System.CommandLine;
using Qwen2VL.Runtime.Aot;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>--kernels DIR</c> and <c>--no-jit</c>, shared by the commands that load a model. Without <c>--kernels</c>, a
/// <c>kernels/</c> folder next to the program (as in the published bundle) is used when it holds a manifest.
/// </summary>
internal sealed class KernelFlags
{
    public const string BundledFolder = "kernels";

    public Option<string?> Directory { get; } = new("--kernels")
    {
        Description = "Folder made by `qwen2vl compile` (manifest.json + PTX per architecture): on cuda the kernels are loaded from it instead of being compiled by ILGPU; a stale manifest is refused. Default: the kernels/ folder next to the program, if any.",
    };

    public Option<bool> NoJit { get; } = new("--no-jit")
    {
        Description = "Make a kernel without precompiled PTX for this GPU an error instead of compiling it (cuda; on cpu nothing is compiled anyway).",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Directory);
        command.Options.Add(NoJit);
    }

    public KernelOptions Read(ParseResult parse) => new(parse.GetValue(Directory) ?? Bundled(), parse.GetValue(NoJit));

    /// <summary>The bundle's <c>kernels/</c> folder, when the program ships one.</summary>
    public static string? Bundled()
    {
        var folder = Path.Combine(AppContext.BaseDirectory, BundledFolder);
        return File.Exists(Path.Combine(folder, PtxManifest.FileName)) ? folder : null;
    }
}
