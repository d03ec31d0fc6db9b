using System;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// The passes, declared once in the order they run. <see cref="ModuleGenerator"/> calls these and nothing else to go
/// from a parsed module to a planned graph: shape inference, then fusion, then the memory plan; emission follows.
/// </summary>
internal static class PassOrder
{
    public static readonly string[] Names =
    {
        "ShapeInference", // symbolic shapes and dtypes; mismatches are build errors
        "Fusion",         // elementwise chains, GEMM epilogues (bias, activation, residual), norm + residual
        "MemoryPlan",     // liveness-based reuse of intermediate buffers
        "Emit",           // ILGPU kernels, CPU kernels, host runner, graph dump
    };

    /// <summary>Pass 1: the typed graph of a module (its submodules' graphs from <paramref name="child"/>).</summary>
    public static Graph InferShapes(ModuleModel module, Func<string, Graph?> child) => ShapeInference.Run(module, child);

    /// <summary>Passes 2 and 3 for inference: fused groups, arena slots reused.</summary>
    public static FusedGraph Inference(Graph graph) => Plan(graph, fuse: true, prefix: "G");

    /// <summary>Passes 2 and 3 for training: one group per op, every value kept for the backward pass.</summary>
    public static FusedGraph Training(Graph graph) => Plan(graph, fuse: false, prefix: "T");

    private static FusedGraph Plan(Graph graph, bool fuse, string prefix)
    {
        var groups = Fusion.Run(graph, fuse, prefix);
        return new FusedGraph(graph, groups.ToEquatableArray(), MemoryPlanner.Run(graph, groups, reuse: fuse));
    }
}
