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
            needs[graph.Output] = graph[graph.Output].DType != "I64";
        for (var id = count - 1; id >= 0; id--)
        {
            var node = graph[id];
            if (!needs[id] || node.Kind is NodeKinds.Input or NodeKinds.Param)
                continue;
            foreach (var input in node.Inputs)
                if (graph[input].DType != "I64")
                    needs[input] = true;
        }
        var root = Enumerable.Range(0, count).ToArray();
        foreach (var node in graph.Nodes)
            if (IsView(node))
                root[node.Id] = root[node.Inputs[0]];
        return (needs, root);
    }

    public static bool IsView(Node node) => node.Kind == NodeKinds.Op && node.Op is "Reshape" or "SplitHeads" or "MergeHeads";
}
