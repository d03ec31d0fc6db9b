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

        context.RegisterSourceOutput(fused, static (spc, result) =>
        {
            if (result is null)
                return;
            foreach (var diagnostic in result.Diagnostics)
                spc.ReportDiagnostic(diagnostic.ToDiagnostic());
            if (result.Fused is not { } item)
                return;
            var graph = item.Graph;
            var hint = (graph.Namespace.Length > 0 ? graph.Namespace + "." : "") + graph.Name;
            // Each target is emitted on its own: one that cannot lower an op reports QVL0901 on the op's line and adds no
            // file. The kernels (GPU and CPU targets) are emitted for all modules together, below.
            Emit(spc, graph, () => spc.AddSource(hint + ".Runner.g.cs", RunnerEmitter.Emit(item)));
            // The pass dump is no target: it is emitted even when a target cannot lower an op (it shows the typed graph
            // and the backward steps the gradient table gives, which is how collectives are checked until they lower).
            Emit(spc, graph, () => spc.AddSource(hint + ".Graph.g.cs", GraphDumper.AsSource(item)));
            Emit(spc, graph, () =>
            {
                spc.AddSource(hint + ".Training.g.cs", TrainingEmitter.Emit(PassOrder.Training(graph)));
            });
        });

        // The sharding pass: per module that splits a param itself, the graph one tensor-parallel rank runs (a dump, not lowered).
        context.RegisterSourceOutput(graphs.Combine(modules.Collect()), static (spc, pair) =>
        {
            var (graph, all) = pair;
            var module = all.FirstOrDefault(m => m.Namespace == graph.Namespace && m.Name == graph.Name);
            if (graph.HasErrors || graph.Output < 0 || module is null || !module.Params.Any(p => p.Shard is ShardKind.Column or ShardKind.Row))
                return;
            try
            {
                var (perRank, failed, why) = ShardingPass.Run(graph, module);
                if (perRank is null)
                {
                    var location = failed is null ? Location.None : graph.LocationOf(failed)?.ToLocation() ?? Location.None;
                    spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.ShardingUnplaced, location, graph.Name, failed?.Op ?? "?", why ?? ""));
                    return;
                }
                var hint = (graph.Namespace.Length > 0 ? graph.Namespace + "." : "") + graph.Name;
                spc.AddSource(hint + ".Sharded.g.cs", GraphDumper.ShardedSource(perRank));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, Location.None, graph.Name, "sharding pass: " + e.GetType().Name + ": " + e.Message));
            }
        });

        // The shard plan and its bind-time check, per module that shards a param (itself or through a submodule).
        context.RegisterSourceOutput(modules.Collect(), static (spc, all) =>
        {
            try
            {
                var withPlans = ShardPlanEmitter.WithPlans(all);
                foreach (var module in all.Where(m => withPlans.Contains(m.FullName) && m.Diagnostics.Count == 0))
                    spc.AddSource((module.Namespace.Length > 0 ? module.Namespace + "." : "") + module.Name + ".ShardPlan.g.cs",
                        ShardPlanEmitter.Emit(module, withPlans));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, Location.None, "shard plan", e.GetType().Name + ": " + e.Message));
            }
        });

        // One kernel file per target for the whole assembly: every distinct kernel once, by content.
        context.RegisterSourceOutput(fused.Collect(), static (spc, all) =>
        {
            var modules = all.Where(r => r?.Fused is not null).Select(r => r!.Fused!)
                .OrderBy(f => f.Graph.Namespace + "." + f.Graph.Name, StringComparer.Ordinal).ToList();
            foreach (var (target, suffix) in new[] { (LoweringTarget.GpuKernel, "Gpu"), (LoweringTarget.CpuKernel, "Cpu") })
            {
                var uses = new SharedKernelEmitter.Uses();
                foreach (var module in modules)
                    Emit(spc, module.Graph, () => uses.Add(module, target));
                if (uses.Kernels.Count + uses.Epilogues.Count == 0)
                    continue;
                Emit(spc, modules[0].Graph, () => spc.AddSource($"{SharedKernelEmitter.Namespace}.Kernels.{suffix}.g.cs",
                    target == LoweringTarget.GpuKernel ? SharedKernelEmitter.Gpu(uses) : SharedKernelEmitter.Cpu(uses)));
            }
        });
    }

    /// <summary>Runs one emitter; a failure is a QVL0901 diagnostic (on the op's line when an op could not be lowered), never silent.</summary>
    private static void Emit(SourceProductionContext spc, Graph graph, Action emit)
    {
        try
        {
            emit();
        }
        catch (GradientRuleException e)
        {
            var location = graph.LocationOf(e.Node)?.ToLocation() ?? Location.None;
            spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InvalidGradRule, location, e.Op.Name, e.Op.Grad ?? "", e.Message));
        }
        catch (UnloweredOpException e)
        {
            var location = graph.LocationOf(e.Node)?.ToLocation() ?? Location.None;
            spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, location, graph.Name, e.Message));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, Location.None, graph.Name, e.GetType().Name + ": " + e.Message));
        }
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

    /// <summary>Fusion and memory plan; an internal failure becomes a QVL0901 diagnostic on the module (never swallowed).</summary>
    private static FuseResult SafeFuse(Graph graph)
    {
        try
        {
            return new FuseResult(PassOrder.Inference(graph), EquatableArray<DiagnosticInfo>.Empty);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var location = graph.FilePath.Length > 0 && graph.Output >= 0 ? graph.LocationOf(graph[graph.Output]) : null;
            var diagnostic = DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, location, graph.Name, "fusion failed: " + e.GetType().Name + ": " + e.Message);
            return new FuseResult(null, new[] { diagnostic }.ToEquatableArray());
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
                graph = PassOrder.InferShapes(module, Infer);
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

/// <summary>The fusion step's result: the planned graph, or the diagnostic saying why there is none.</summary>
public sealed record FuseResult(FusedGraph? Fused, EquatableArray<DiagnosticInfo> Diagnostics);

/// <summary>Names of the incremental steps (tests check they stay cached after unrelated edits).</summary>
public static class TrackingNames
{
    public const string Parse = "ParseModule";
    public const string InferShapes = "InferShapes";
    public const string Fuse = "Fuse";
}
