using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Qwen2VL.Generator;

namespace Qwen2VL.Tests.Generator;

/// <summary>Runs the source generator in-process over given sources, as the compiler does at build time.</summary>
internal static class GeneratorHarness
{
    private static readonly Lazy<MetadataReference[]> References = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.Ordinal))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToArray());

    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    public static CSharpCompilation Compilation(params (string Path, string Text)[] sources) =>
        CSharpCompilation.Create("DslSample",
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, ParseOptions, s.Path)),
            References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    public static GeneratorDriver Driver() =>
        CSharpGeneratorDriver.Create(new[] { new ModuleGenerator().AsSourceGenerator() }, parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator; returns generated files (hint name → text), generator diagnostics and the compile errors of the result.</summary>
    public static Result Run(params (string Path, string Text)[] sources)
    {
        var compilation = Compilation(sources);
        var driver = Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        var files = driver.GetRunResult().Results.SelectMany(r => r.GeneratedSources)
            .ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        var errors = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToImmutableArray();
        return new Result(files, diagnostics, errors);
    }

    public sealed record Result(Dictionary<string, string> Files, ImmutableArray<Diagnostic> Diagnostics, ImmutableArray<Diagnostic> CompileErrors);

    /// <summary>The repository root, found from this source file's location.</summary>
    public static string RepoRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", ".."));

    public static (string Path, string Text) RepoSource(string relative) =>
        (relative, File.ReadAllText(Path.Combine(RepoRoot(), relative)));

    /// <summary>A DSL sample as it would sit in a user's file.</summary>
    public static (string Path, string Text) Sample(string name, string body) => ($"Samples/{name}.cs",
        "using Qwen2VL.Dsl;\nusing static Qwen2VL.Dsl.Ops;\n\nnamespace Samples;\n\n" + body.Trim() + "\n");
}
