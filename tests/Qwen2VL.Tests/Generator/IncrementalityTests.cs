using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Qwen2VL.Generator;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>An edit that does not touch a module leaves every generator step cached; one that does re-runs them.</summary>
public sealed class IncrementalityTests
{
    private static readonly string[] Steps = { TrackingNames.Parse, TrackingNames.InferShapes, TrackingNames.Fuse };

    [Fact]
    public void UnrelatedEditLeavesEveryStepCached()
    {
        var (driver, compilation, other) = FirstRun();
        var edited = compilation.ReplaceSyntaxTree(other,
            CSharpSyntaxTree.ParseText("namespace Other; public class Unrelated { public int Answer => 42; }", GeneratorHarness.ParseOptions, other.FilePath));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();
        foreach (var step in Steps)
        {
            var outputs = result.TrackedSteps[step].SelectMany(s => s.Outputs).ToList();
            Assert.NotEmpty(outputs);
            Assert.All(outputs, o => Assert.True(o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"step {step} re-ran ({o.Reason}) after an unrelated edit"));
        }
    }

    [Fact]
    public void EditingTheModuleRerunsItsSteps()
    {
        var (driver, compilation, _) = FirstRun();
        var module = compilation.SyntaxTrees.First(t => t.FilePath.EndsWith("VisionBlock.cs"));
        var changed = module.GetText().ToString().Replace("10000f", "20000f");
        var edited = compilation.ReplaceSyntaxTree(module, CSharpSyntaxTree.ParseText(changed, GeneratorHarness.ParseOptions, module.FilePath));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();
        var fuse = result.TrackedSteps[TrackingNames.Fuse].SelectMany(s => s.Outputs).ToList();
        Assert.Contains(fuse, o => o.Reason == IncrementalStepRunReason.Modified);
    }

    [Fact]
    public void GeneratorModelsHoldNoRoslynObjects()
    {
        // Symbols, syntax nodes and compilations in the pipeline's models would defeat caching (and leak memory).
        var forbidden = new[] { typeof(ISymbol), typeof(SyntaxNode), typeof(Compilation), typeof(SemanticModel), typeof(Location), typeof(SyntaxTree) };
        var modelTypes = typeof(ModuleGenerator).Assembly.GetTypes().Where(t => t.Namespace == "Qwen2VL.Generator.Model");
        foreach (var type in modelTypes)
            foreach (var property in type.GetProperties())
                Assert.False(forbidden.Any(f => f.IsAssignableFrom(property.PropertyType)),
                    $"{type.Name}.{property.Name} holds a {property.PropertyType.Name}");
    }

    private static (GeneratorDriver Driver, CSharpCompilation Compilation, SyntaxTree Other) FirstRun()
    {
        var compilation = GeneratorHarness.Compilation(
            GeneratorHarness.RepoSource("models/qwen2vl/Vision/VisionBlock.cs"),
            ("Other.cs", "namespace Other; public class Unrelated { }"));
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);
        return (driver, compilation, compilation.SyntaxTrees.Single(t => t.FilePath == "Other.cs"));
    }
}
