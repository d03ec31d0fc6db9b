using System.CommandLine;
using System.Reflection;
using Qwen2VL.Cli;
using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Aot;

/// <summary>
/// One <c>qwen2vl compile --config tiny --arch sm_80 --arch sm_90</c> run into a temp folder, shared by the Aot tests
/// (a full compile of both architectures takes a few seconds).
/// </summary>
public sealed class CompiledModel : IDisposable
{
    public CompiledModel()
    {
        Root = Directory.CreateTempSubdirectory("qwen2vl-aot-").FullName;
        BuildDir = Path.Combine(Root, "build");
        (ExitCode, Output, Error) = Cli.Run("compile", "--config", "tiny", "--arch", "sm_90", "--arch", "sm_80", "--out", BuildDir);
        if (ExitCode == 0) Manifest = PtxManifest.Load(BuildDir);
    }

    public string Root { get; }
    public string BuildDir { get; }
    public int ExitCode { get; }
    public string Output { get; }
    public string Error { get; }
    public PtxManifest? Manifest { get; }

    public static Assembly ModelAssembly => typeof(Qwen2VL.Model.Vision.VisionBlock).Assembly;

    /// <summary>The [Module] classes, found with the DSL's attribute type (independently of KernelCatalog's by-name lookup).</summary>
    public static Type[] ModuleTypes => ModelAssembly.GetTypes()
        .Where(t => t.IsDefined(typeof(Qwen2VL.Dsl.ModuleAttribute), inherit: false))
        .OrderBy(t => t.FullName, StringComparer.Ordinal)
        .ToArray();

    /// <summary>The model's shared generated GPU kernel class: every distinct kernel of every module, once.</summary>
    public static Type SharedGpuKernels =>
        ModelAssembly.GetType(KernelCatalog.SharedKernelsType, throwOnError: true)!.GetNestedType("GpuKernels")!;

    /// <summary>The content name of the one shared GPU kernel or epilogue with <paramref name="stem"/> ("LayerNorm" → "LayerNorm_1a2b3c4d").</summary>
    public static string Kernel(string stem) =>
        SharedGpuKernels.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly).Select(m => m.Name)
            .Concat(SharedGpuKernels.GetNestedTypes().Select(t => t.Name))
            .Single(n => System.Text.RegularExpressions.Regex.IsMatch(n, "^" + stem + "_[0-9a-f]{8}$"));

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

[CollectionDefinition(Name)]
public sealed class CompiledModelCollection : ICollectionFixture<CompiledModel>
{
    public const string Name = "Aot compiled model";
}

/// <summary>Invokes the <c>compile</c> command through System.CommandLine with captured output.</summary>
internal static class Cli
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var root = new RootCommand("test") { CompileCommand.Create() };
        var output = new StringWriter();
        var error = new StringWriter();
        var code = CliApp.RunAsync(root, args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }
}
