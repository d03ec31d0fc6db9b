using System;
using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// Which values of a module need a gradient, and which share storage for it. A float value needs one when the
/// output depends on it; integer tensors (positions, masks, ids) never do. A view (reshape, split/merge heads) has
/// no gradient buffer of its own: its gradient is a view of its source's, so accumulating into one accumulates into
/// the other. Each op's gradient rule is its row of the gradient table, declared next to its shape rule in the DSL
/// ([Op(Grad = …)]) and parsed with the Forward grammar (<see cref="GradAssign"/>); <see cref="Steps"/> turns the rows into
/// the backward pass's steps and what each reads, which is what the training memory plan decides on.
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

    /// <summary>
    /// The backward pass: one step per node whose output needs a gradient, in reverse program order (views excepted:
    /// their gradient is their source's), each with its gradient table rows and the forward values those rows read
    /// (operands by name, <c>y</c> the node itself). A submodule call reads nothing here (its runner keeps its own).
    /// A float operand that needs a gradient and has no row is <see cref="BackwardStep.Missing"/> (the training code
    /// reports it as QVL0203 on the node's line).
    /// </summary>
    public static List<BackwardStep> Steps(Graph graph, bool[] needs)
    {
        var ops = graph.Ops.GroupBy(o => o.Name).ToDictionary(g => g.Key, g => g.First());
        var steps = new List<BackwardStep>();
        for (var id = graph.Nodes.Count - 1; id >= 0; id--)
        {
            var node = graph[id];
            if (!needs[id] || node.IsLeaf || IsView(node))
                continue;
            if (node.IsCall || node.Kind == OpKind.Unsupported || !ops.TryGetValue(node.Op, out var op))
            {
                steps.Add(new BackwardStep(node, Array.Empty<GradAssign>(), new HashSet<int>(), null));
                continue;
            }
            var rules = op.GradRules.Where(r => r.Index < node.Inputs.Count).ToList();
            var tensors = op.Parameters.Where(p => p.Kind is "Tensor" or "OptionalTensor").Select(p => p.Name).ToList();
            var missing = Enumerable.Range(0, node.Inputs.Count).Where(k => needs[node.Inputs[k]] && rules.All(r => r.Index != k))
                .Select(k => k < tensors.Count ? tensors[k] : "#" + (k + 1)).FirstOrDefault();
            var reads = new HashSet<int>();
            foreach (var rule in rules)
                foreach (var name in Names(rule.Value))
                {
                    if (name == "y")
                        reads.Add(node.Id);
                    var operand = tensors.IndexOf(name);
                    if (operand >= 0 && operand < node.Inputs.Count)
                        reads.Add(node.Inputs[operand]);
                }
            steps.Add(new BackwardStep(node, rules, reads, missing));
        }
        return steps;
    }

    /// <summary>The names an expression of the gradient table reads.</summary>
    public static IEnumerable<string> Names(Expr expr) => expr switch
    {
        NameExpr name => new[] { name.Name },
        OpCallExpr call => call.Args.SelectMany(Names),
        FunctionExpr function => function.Args.SelectMany(Names),
        BinaryExpr binary => Names(binary.Left).Concat(Names(binary.Right)),
        NegateExpr negate => Names(negate.Operand),
        _ => Enumerable.Empty<string>(),
    };
}

/// <summary>
/// One step of the backward pass: the node whose gradient rule runs, its gradient table rows, the forward values they
/// read, and the first operand that needs a gradient but has no row (null when none).
/// </summary>
internal sealed record BackwardStep(Node Node, IReadOnlyList<GradAssign> Rules, ISet<int> Reads, string? Missing)
{
    /// <summary>The step as the pass dump shows it: "%34 Add: da = dy; db = dy   reads -".</summary>
    public override string ToString()
    {
        var rows = Rules.Count > 0 ? string.Join("; ", Rules.Select(r => $"d{r.Operand} = {r.Text}"))
            : Node.IsCall ? $"{Node.Op}.Backward(dy)" : "no rule";
        var reads = Reads.Count > 0 ? string.Join(" ", Reads.OrderBy(r => r).Select(r => "%" + r)) : "-";
        return $"%{Node.Id} {Node.Op}: {rows}   reads {reads}" + (Missing is null ? "" : $"   (no row for d{Missing})");
    }
}

/// <summary>An op's gradient table lacks what a node needs: reported as QVL0203 on the node's line.</summary>
internal sealed class GradientRuleException(Node node, OpInfo op, string why) : Exception(why)
{
    public Node Node { get; } = node;
    public OpInfo Op { get; } = op;
}
