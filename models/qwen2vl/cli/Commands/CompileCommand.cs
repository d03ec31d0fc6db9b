using System.CommandLine;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>compile [--model DIR | --config NAME] --arch sm_80|sm_90 [--arch …] --out DIR</c>: compiles every GPU kernel
/// of the model (the generated GpuKernels of each [Module], the GEMM kernels with each generated epilogue, the
/// attention kernels) to PTX without a GPU, into <c>DIR/&lt;arch&gt;/&lt;Module&gt;.&lt;Kernel&gt;.ptx</c> and
/// <c>DIR/manifest.json</c>. The kernels are size-generic, so the config is only recorded in the manifest.
/// Bad input is one line on stderr and exit code 2; DIR appears only when everything compiled.
/// </summary>
/// <remarks>Public so that the tests can build and invoke the command with their own output writers.</remarks>
public static class CompileCommand
{
    public static Command Create()
    {
        var modelOption = new Option<string?>("--model") { Description = "Model folder whose config.json is recorded in the manifest." };
        var configOption = new Option<string?>("--config") { Description = $"Built-in config to record instead: {string.Join(", ", BuiltInConfigs.Names)}." };
        var archOption = new Option<string[]>("--arch") { Description = $"GPU architecture to compile for, repeatable: {string.Join(", ", PtxTarget.SupportedNames)}." };
        var outOption = new Option<string?>("--out") { Description = "Output folder (created or replaced atomically)." };

        var command = new Command("compile", "Compile every GPU kernel of the model to PTX ahead of time (no GPU needed).");
        command.Options.Add(modelOption);
        command.Options.Add(configOption);
        command.Options.Add(archOption);
        command.Options.Add(outOption);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            // Checked here rather than with Required = true so that a missing option is one line and exit code 2.
            var outDir = parseResult.GetValue(outOption);
            if (string.IsNullOrWhiteSpace(outDir)) throw new AotException("--out DIR is required");
            var arches = parseResult.GetValue(archOption) ?? [];
            if (arches.Length == 0) throw new AotException($"--arch is required ({string.Join(", ", PtxTarget.SupportedNames)})");
            var targets = arches.Select(PtxTarget.Parse).ToArray();
            var model = parseResult.GetValue(modelOption);
            var configName = parseResult.GetValue(configOption);
            if (model is not null && configName is not null) throw new AotException("give --model or --config, not both");
            var config = model is not null ? AotConfig.FromModelDirectory(model)
                : configName is not null ? AotConfig.BuiltIn(configName)
                : null;

            var modules = KernelCatalog.ModuleTypes(typeof(Qwen2VL.Model.Vision.VisionBlock).Assembly);
            var manifest = AotBuild.Run(modules, targets, config, outDir);
            output.WriteLine($"compiled {manifest.Kernels.Count} kernels ({manifest.Kernels.Count / manifest.Architectures.Count} per architecture) " +
                             $"for {string.Join(", ", manifest.Architectures)} into {outDir}");
            return 0;
        });
        return command;
    }
}
