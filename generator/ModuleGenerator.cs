using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Emit;
using Qwen2VL.Generator.Model;
using Qwen2VL.Generator.Parsing;
using Qwen2VL.Generator.Passes;

namespace Qwen2VL.Generator;

/// <summary>
/// [Module] classes → parse (equatable model) → shape inference (typed graph, diagnostics) → fusion + memory plan
/// → emit (GPU kernels, CPU kernels, host runner, pass dump). Each step has a tracking name.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class ModuleGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var modules = context.SyntaxProvider
            .ForAttributeWithMetadataName(DslNames.Module, static (node, _) => node is ClassDeclarationSyntax, SafeParse)
            .WithTrackingName(TrackingNames.Parse);

        var graphs = modules.Collect()
            .SelectMany(static (all, ct) => InferAll(all, ct))
            .WithTrackingName(TrackingNames.InferShapes);

        var fused = graphs
            .Select(static (graph, _) => graph.HasErrors || graph.Output < 0 ? null : SafeFuse(graph))
            .WithTrackingName(TrackingNames.Fuse);

        context.RegisterSourceOutput(graphs, static (spc, graph) =>
        {
            foreach (var diagnostic in graph.Diagnostics)
                spc.ReportDiagnostic(diagnostic.ToDiagnostic());
        });

        context.RegisterSourceOutput(fused, static (spc, item) =>
        {
            if (item is null)
                return;
            var hint = (item.Graph.Namespace.Length > 0 ? item.Graph.Namespace + "." : "") + item.Graph.Name;
            try
            {
                spc.AddSource(hint + ".Gpu.g.cs", KernelFileEmitter.Gpu(item));
                spc.AddSource(hint + ".Cpu.g.cs", KernelFileEmitter.Cpu(item));
                spc.AddSource(hint + ".Runner.g.cs", RunnerEmitter.Emit(item));
                spc.AddSource(hint + ".Graph.g.cs", GraphDumper.AsSource(item));
                var (host, gpu, cpu) = TrainingEmitter.Emit(Fusion.Run(item.Graph, fuse: false, prefix: "T"));
                spc.AddSource(hint + ".Training.g.cs", host);
                spc.AddSource(hint + ".TrainGpu.g.cs", gpu);
                spc.AddSource(hint + ".TrainCpu.g.cs", cpu);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, Location.None, item.Graph.Name, e.Message));
            }
        });
    }

    private static ModuleModel SafeParse(GeneratorAttributeSyntaxContext context, CancellationToken ct)
    {
        try
        {
            return ModuleParser.Parse(context, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var name = context.TargetSymbol.Name;
            var diagnostic = DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, LocationInfo.From(context.TargetNode), name, e.Message);
            return new ModuleModel("", name, name, true, null, EquatableArray<DimDecl>.Empty, EquatableArray<ConstDecl>.Empty, EquatableArray<ParamDecl>.Empty,
                EquatableArray<SubmoduleDecl>.Empty, null, new[] { diagnostic }.ToEquatableArray());
        }
    }

    private static FusedGraph? SafeFuse(Graph graph)
    {
        try
        {
            return Fusion.Run(graph);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null; // the graph step already reported everything it could; an internal failure is surfaced in tests
        }
    }

    /// <summary>Shape inference for every module, children first (a submodule's output shape feeds its caller).</summary>
    private static ImmutableArray<Graph> InferAll(ImmutableArray<ModuleModel> modules, CancellationToken ct)
    {
        var byName = new Dictionary<string, ModuleModel>();
        foreach (var module in modules)
            byName[module.FullName] = module;
        var done = new Dictionary<string, Graph?>();
        var inProgress = new HashSet<string>();

        Graph? Infer(string fullName)
        {
            if (done.TryGetValue(fullName, out var cached))
                return cached;
            if (!byName.TryGetValue(fullName, out var module) || !inProgress.Add(fullName))
                return null; // unknown module or a cycle
            ct.ThrowIfCancellationRequested();
            Graph graph;
            try
            {
                graph = ShapeInference.Run(module, Infer);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var diagnostic = DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, module.Location, module.Name, e.Message);
                graph = new Graph(module.Namespace, module.Name, EquatableArray<DimInfo>.Empty, module.Consts, EquatableArray<Node>.Empty, -1,
                    module.Submodules, EquatableArray<OpInfo>.Empty, new[] { diagnostic }.ToEquatableArray());
            }
            inProgress.Remove(fullName);
            done[fullName] = graph;
            return graph;
        }

        return modules.Select(m => Infer(m.FullName)).Where(g => g is not null).Select(g => g!).ToImmutableArray();
    }
}

/// <summary>Names of the incremental steps (tests check they stay cached after unrelated edits).</summary>
public static class TrackingNames
{
    public const string Parse = "ParseModule";
    public const string InferShapes = "InferShapes";
    public const string Fuse = "Fuse";
}
