using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// Which values of a module need a gradient, and which share storage for it. A float value needs one when the
/// output depends on it; integer tensors (positions, masks, ids) never do. A view (reshape, split/merge heads) has
/// no gradient buffer of its own: its gradient is a view of its source's, so accumulating into one accumulates into
/// the other. Each op's gradient rule is declared next to its shape rule in the DSL ([Op(Grad = …)]).
/// </summary>
internal static class Autodiff
{
    public static (bool[] NeedsGrad, int[] GradRoot) Run(Graph graph)
    {
        var count = graph.Nodes.Count;
        var needs = new bool[count];
        if (graph.Output >= 0)
            needs[graph.Output] = graph[graph.Output].DType != DType.I64;
        for (var id = count - 1; id >= 0; id--)
        {
            var node = graph[id];
            if (!needs[id] || node.Kind is OpKind.Input or OpKind.Param)
                continue;
            foreach (var input in node.Inputs)
                if (graph[input].DType != DType.I64)
                    needs[input] = true;
        }
        var root = Enumerable.Range(0, count).ToArray();
        foreach (var node in graph.Nodes)
            if (IsView(node))
                root[node.Id] = root[node.Inputs[0]];
        return (needs, root);
    }

    /// <summary>
    /// The values the module's recompute policy lets the training code recompute instead of keeping: outputs of single
    /// ops of the policy's groups (norm, elementwise, softmax, rotary), except the module's output (its caller reads
    /// it) and values a submodule call reads (the child keeps a reference to its inputs for its own backward pass).
    /// </summary>
    public static bool[] Recomputable(FusedGraph train)
    {
        var graph = train.Graph;
        var alias = train.Plan.AliasOf;
        var recompute = new bool[graph.Nodes.Count];
        foreach (var group in train.Groups)
        {
            var node = graph[group.Output];
            recompute[node.Id] = group.Nodes.Count == 1 && group.Residual < 0 && !node.IsLeaf && !node.IsCall && node.DType != DType.I64
                && group.Kind is GroupKind.Elementwise or GroupKind.Norm or GroupKind.Softmax or GroupKind.Rotary
                && (graph.Recompute & RecomputePolicy.BitOf(node.Group)) != 0;
        }
        if (graph.Output >= 0)
            recompute[alias[graph.Output]] = false;
        foreach (var node in graph.Nodes.Where(n => n.Kind is OpKind.Call or OpKind.Loop))
            foreach (var input in node.Inputs)
                recompute[alias[input]] = false;
        return recompute;
    }

    public static bool IsView(Node node) => node.IsView;
}
