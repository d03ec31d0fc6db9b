using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// Pass 2: groups graph nodes into kernels. Elementwise chains join the group of their producer when the
/// producer has no other consumer: a pointwise chain, or the epilogue of a linear (bias, activation, residual
/// add). A norm whose input is a lone add computes the add itself and writes both (norm with residual).
/// </summary>
internal static class Fusion
{
    /// <summary>
    /// Groups the graph for inference (<paramref name="fuse"/>: chains, epilogues, norm + residual) or for training (every
    /// op its own kernel), naming groups with <paramref name="prefix"/>. <see cref="PassOrder"/> runs it, then the memory plan.
    /// </summary>
    public static List<KernelGroup> Run(Graph graph, bool fuse, string prefix)
    {
        var nodes = graph.Nodes;
        var consumers = new int[nodes.Count];
        foreach (var node in nodes)
            foreach (var input in node.Inputs)
                consumers[input]++;
        if (graph.Output >= 0)
            consumers[graph.Output]++;

        var groups = new List<Builder>();
        var groupOf = new Dictionary<int, Builder>();
        foreach (var node in nodes)
        {
            if (GroupOf(node.Kind) is not { } kind)
                continue;
            var builder = kind switch
            {
                GroupKind.Elementwise => (fuse ? JoinProducer(graph, node, consumers, groupOf) : null) ?? new Builder(kind, node.Id),
                GroupKind.Norm => (fuse ? NormWithResidual(graph, node, consumers, groupOf, groups) : null) ?? new Builder(kind, node.Id),
                GroupKind.Gemm or GroupKind.Softmax or GroupKind.Rotary or GroupKind.Copy or GroupKind.Attention or GroupKind.View
                    or GroupKind.Call or GroupKind.Loop or GroupKind.Unlowered => new Builder(kind, node.Id),
            };
            if (!groups.Contains(builder))
                groups.Add(builder);
            groupOf[node.Id] = builder;
        }

        var result = new List<KernelGroup>();
        for (var i = 0; i < groups.Count; i++)
        {
            var g = groups[i];
            var name = prefix + (i + 1) + "_" + string.Join("_", g.Nodes.Select(n => nodes[n].Op));
            result.Add(new KernelGroup(i + 1, g.Kind, g.Nodes.ToEquatableArray(), g.Output, g.Residual, name));
        }
        return result;
    }

    /// <summary>The group kind of each op kind (null: a leaf, computed by no group). No default arm: a new kind must be placed.</summary>
    public static GroupKind? GroupOf(OpKind kind) => kind switch
    {
        OpKind.Input or OpKind.Param => null,
        OpKind.Call => GroupKind.Call,
        OpKind.Loop => GroupKind.Loop,
        OpKind.Add or OpKind.Mul or OpKind.Scale or OpKind.QuickGelu or OpKind.Gelu or OpKind.Silu or OpKind.Sigmoid
            or OpKind.Pointwise => GroupKind.Elementwise,
        OpKind.LayerNorm or OpKind.RmsNorm => GroupKind.Norm,
        OpKind.Softmax => GroupKind.Softmax,
        OpKind.Linear => GroupKind.Gemm,
        OpKind.VisionRotary or OpKind.MRope => GroupKind.Rotary,
        OpKind.Attention or OpKind.CausalAttention => GroupKind.Attention,
        OpKind.Reshape or OpKind.SplitHeads or OpKind.MergeHeads => GroupKind.View,
        OpKind.Transpose or OpKind.Select or OpKind.Concat or OpKind.Embedding => GroupKind.Copy,
        // Collectives are host calls on a communicator, placed by a sharding pass that does not exist yet: unlowered.
        OpKind.ParallelCopy or OpKind.AllReduce or OpKind.AllGather or OpKind.ReduceScatter or OpKind.Unsupported => GroupKind.Unlowered,
    };

    /// <summary>An elementwise node joins the group that produced one of its operands, if that operand is used once.</summary>
    private static Builder? JoinProducer(Graph graph, Node node, int[] consumers, Dictionary<int, Builder> groupOf)
    {
        foreach (var input in node.Inputs)
        {
            if (!groupOf.TryGetValue(input, out var producer) || producer.Output != input || consumers[input] != 1
                || !graph[input].Shape.Equals(node.Shape))
                continue;
            // The group runs where its first node was: every other operand must exist by then.
            if (node.Inputs.Any(i => i != input && i > producer.Nodes[0] && !graph[i].IsLeaf))
                continue;
            if (producer.Kind == GroupKind.Elementwise)
            {
                producer.Append(node.Id);
                return producer;
            }
            // A GEMM epilogue sees one (row, col) at a time: other operands must be full-shape or a row vector.
            var last = node.Shape[node.Shape.Count - 1];
            var fits = node.Inputs.Where(i => i != input).All(i =>
                graph[i].Shape.Equals(node.Shape) || (graph[i].Shape.Count == 1 && graph[i].Shape[0].Equals(last)));
            if (producer.Kind == GroupKind.Gemm && fits)
            {
                producer.Append(node.Id);
                return producer;
            }
        }
        return null;
    }

    /// <summary>Norm(a + b): the norm kernel adds, writes the sum (the residual stream) and normalises it.</summary>
    private static Builder? NormWithResidual(Graph graph, Node norm, int[] consumers, Dictionary<int, Builder> groupOf, List<Builder> groups)
    {
        var x = norm.Inputs[0];
        if (!groupOf.TryGetValue(x, out var producer) || producer.Kind != GroupKind.Elementwise || producer.Nodes.Count != 1
            || graph[x].Kind != OpKind.Add || graph[x].Inputs.Any(i => !graph[i].Shape.Equals(graph[x].Shape)))
            return null;
        groups.Remove(producer);
        var fused = new Builder(GroupKind.Norm, x);
        fused.Append(norm.Id);
        fused.Residual = consumers[x] > 1 ? x : -1;
        groupOf[x] = fused;
        return fused;
    }

    private sealed class Builder
    {
        public Builder(GroupKind kind, int first)
        {
            Kind = kind;
            Nodes.Add(first);
            Output = first;
        }

        public GroupKind Kind { get; }
        public List<int> Nodes { get; } = new();
        public int Output { get; private set; }
        public int Residual { get; set; } = -1;

        public void Append(int node)
        {
            Nodes.Add(node);
            Output = node;
        }
    }
}
