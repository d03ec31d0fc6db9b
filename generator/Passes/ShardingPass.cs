using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// The sharding pass (issue 13): a module's graph → the graph one tensor-parallel rank runs, between shape inference
/// and fusion. It follows Megatron-LM (Shoeybi et al. 2019, §3) from the shard plan declared on the params:
/// a column-parallel Linear (its weight split along the outputs) reads its input through <c>ParallelCopy</c> (f, one per
/// input value, so q/k/v share one), and its output is split along the last axis; a row-parallel Linear (split along
/// the inputs) reads a split value and gives a partial sum, which <c>AllReduce</c> (g) completes, its bias (replicated)
/// added after the sum. Every other op keeps its operands' split: views move the split axis (to the axis of the
/// param's <c>ShardGroups</c> dim when the view has one: whole heads), rotaries and attention keep the heads split,
/// elementwise ops need their operands split alike; norms, softmax and submodule calls need replicated operands. The
/// per-rank shapes are the global ones with the split axis divided by the degree <c>Tp</c>, a dim bound per rank.
/// Autodiff over the result gives the backward collectives from the gradient table (f's row all-reduces the input
/// gradient). Vocab-parallel params stay replicated here: a masked lookup and a parallel cross-entropy are not ops yet.
/// What this pass does not do yet: no target lowers the per-rank graph (it is emitted as a dump, <c>ShardedGraph</c>).
/// </summary>
internal static class ShardingPass
{
    public const string Degree = "Tp";

    /// <summary>Where a value lives: replicated (Axis &lt; 0) or split along Axis, in whole groups of Group when given.</summary>
    private readonly record struct Split(int Axis, SymExpr? Group)
    {
        public static readonly Split Replicated = new(-1, null);
        public bool IsSplit => Axis >= 0;
    }

    /// <summary>The per-rank graph, or the node that cannot be placed and why.</summary>
    public static (Graph? Graph, Node? Failed, string? Why) Run(Graph graph, ModuleModel module)
    {
        var pass = new Pass(graph, module);
        return pass.Run();
    }

    private sealed class Pass(Graph graph, ModuleModel module)
    {
        private readonly List<Node> _nodes = new();
        private readonly List<Split> _split = new();
        private readonly Dictionary<int, int> _map = new();
        private readonly Dictionary<int, int> _copies = new();
        private readonly SymExpr _tp = SymExpr.Symbol(Degree);
        private Node? _failed;
        private string? _why;

        public (Graph?, Node?, string?) Run()
        {
            var plan = module.Params.ToDictionary(p => p.Field);
            var scope = ShapeInference.ScopeOf(graph);
            foreach (var node in graph.Nodes)
            {
                if (!Place(node, plan, scope))
                    return (null, _failed ?? node, _why);
            }
            var output = _map[graph.Output];
            if (_split[output].IsSplit)
                return (null, graph[graph.Output], "the module's output is split; a module must return a replicated value");
            var dims = graph.Dims.Concat(new[] { new DimInfo(Degree, "degree", null, null, null, -1, -1) }).ToEquatableArray();
            var ops = graph.Ops.Concat(module.ShardOps.Where(o => graph.Ops.All(g => g.Name != o.Name))).ToEquatableArray();
            return (graph with { Dims = dims, Nodes = _nodes.ToEquatableArray(), Output = output, Ops = ops }, null, null);
        }

        private bool Fail(Node node, string why)
        {
            _failed = node;
            _why = why;
            return false;
        }

        private int Add(Node like, OpKind kind, string op, OpGroup group, IEnumerable<int> inputs, IEnumerable<string> attrs, EquatableArray<SymExpr> globalShape, Split split)
        {
            var id = _nodes.Count;
            var shape = globalShape.ToList();
            if (split.IsSplit)
                shape[split.Axis] = shape[split.Axis].DivideBy(_tp)!;
            _nodes.Add(like with { Id = id, Kind = kind, Op = op, Group = group, Inputs = inputs.ToEquatableArray(), Attrs = attrs.ToEquatableArray(), Shape = shape.ToEquatableArray() });
            _split.Add(split);
            return id;
        }

        private int Keep(Node node, Split split, IEnumerable<string>? attrs = null) =>
            _map[node.Id] = Add(node, node.Kind, node.Op, node.Group, node.Inputs.Select(i => _map[i]), attrs ?? node.Attrs, node.Shape, split);

        private Split S(int oldId) => _split[_map[oldId]];

        /// <summary>f: the replicated value <paramref name="oldId"/> entering a parallel region, once per value.</summary>
        private int CopyOf(int oldId, Node user)
        {
            if (!_copies.TryGetValue(oldId, out var copy))
            {
                var source = graph[oldId];
                copy = Add(user with { Source = "ParallelCopy(" + source.Source + ")" }, OpKind.ParallelCopy, "ParallelCopy", OpGroup.Collective,
                    new[] { _map[oldId] }, new string[0], source.Shape, Split.Replicated);
                _copies[oldId] = copy;
            }
            return copy;
        }

        private bool Place(Node node, Dictionary<string, ParamDecl> plan, DimScope scope)
        {
            var inputs = node.Inputs.Where(i => graph[i].DType != DType.I64).ToList();
            switch (node.Kind)
            {
                case OpKind.Input:
                    Keep(node, Split.Replicated);
                    return true;
                case OpKind.Param:
                {
                    var decl = plan[node.Op];
                    var group = decl.ShardGroups is { } g ? scope.Parse(g, out _, out _) : null;
                    var split = decl.Shard switch
                    {
                        ShardKind.Column => new Split(0, group),
                        ShardKind.Row when node.Shape.Count == 2 => new Split(1, group),
                        _ => Split.Replicated, // norms, row-parallel biases; vocab-parallel tables (see the summary)
                    };
                    Keep(node, split);
                    return true;
                }
                case OpKind.Linear:
                {
                    var w = S(node.Inputs[1]);
                    var x = S(node.Inputs[0]);
                    var hasBias = node.Inputs.Count > 2;
                    var last = node.Shape.Count - 1;
                    if (w.Axis == 0)
                    {
                        if (x.IsSplit)
                            return Fail(node, "a column-parallel Linear reads a split value (it needs a replicated input)");
                        var ins = new List<int> { CopyOf(node.Inputs[0], node), _map[node.Inputs[1]] };
                        if (hasBias)
                            ins.Add(_map[node.Inputs[2]]);
                        _map[node.Id] = Add(node, node.Kind, node.Op, node.Group, ins, node.Attrs, node.Shape, new Split(last, w.Group));
                        return true;
                    }
                    if (w.Axis == 1)
                    {
                        if (x.Axis != last)
                            return Fail(node, "a row-parallel Linear reads a value that is not split along its last axis");
                        if (x.Group is { } xg && w.Group is { } wg && !xg.Equals(wg))
                            return Fail(node, $"a row-parallel Linear split in groups of {wg} reads a value split in groups of {xg}");
                        var partial = Add(node, node.Kind, node.Op, node.Group, new[] { _map[node.Inputs[0]], _map[node.Inputs[1]] }, node.Attrs, node.Shape, Split.Replicated);
                        var sum = Add(node with { Source = "AllReduce(" + node.Source + ")" }, OpKind.AllReduce, "AllReduce", OpGroup.Collective,
                            new[] { partial }, new string[0], node.Shape, Split.Replicated);
                        _map[node.Id] = hasBias
                            ? Add(node with { Source = node.Source + " + bias" }, OpKind.Add, "Add", OpGroup.Elementwise,
                                new[] { sum, _map[node.Inputs[2]] }, new string[0], node.Shape, Split.Replicated)
                            : sum;
                        return true;
                    }
                    if (x.IsSplit)
                        return Fail(node, "a replicated Linear reads a split value");
                    Keep(node, Split.Replicated);
                    return true;
                }
                case OpKind.Add or OpKind.Mul or OpKind.Scale or OpKind.QuickGelu or OpKind.Gelu or OpKind.Silu or OpKind.Sigmoid or OpKind.Pointwise:
                {
                    var first = S(inputs[0]);
                    foreach (var other in inputs.Skip(1))
                    {
                        var s = S(other);
                        var aligned = s.IsSplit ? s.Axis + node.Shape.Count - graph[other].Shape.Count : -1;
                        if (aligned != first.Axis)
                            return Fail(node, $"{node.Op} combines values split differently (a replicated value with a split one needs the sharding plan to split both)");
                    }
                    Keep(node, first);
                    return true;
                }
                case OpKind.LayerNorm or OpKind.RmsNorm or OpKind.Softmax:
                    if (inputs.Any(i => S(i).Axis == graph[i].Shape.Count - 1))
                        return Fail(node, $"{node.Op} reduces over the last axis of a value split along it");
                    Keep(node, S(node.Inputs[0]));
                    return true;
                case OpKind.VisionRotary or OpKind.MRope:
                {
                    var x = S(node.Inputs[0]);
                    if (x.Axis == node.Shape.Count - 1)
                        return Fail(node, $"{node.Op} pairs dims within a head: split whole heads, not the head dim");
                    Keep(node, x);
                    return true;
                }
                case OpKind.Attention or OpKind.CausalAttention:
                {
                    var q = S(node.Inputs[0]);
                    var headAxis = node.Shape.Count - 2;
                    if (inputs.Take(3).Any(i => S(i).Axis != q.Axis) || (q.IsSplit && q.Axis != headAxis))
                        return Fail(node, $"{node.Op} needs q, k and v split alike along the heads axis");
                    Keep(node, q);
                    return true;
                }
                case OpKind.Reshape or OpKind.SplitHeads or OpKind.MergeHeads:
                {
                    var x = S(node.Inputs[0]);
                    if (!x.IsSplit)
                    {
                        Keep(node, Split.Replicated);
                        return true;
                    }
                    var axis = ViewAxis(graph[node.Inputs[0]].Shape, node.Shape, x);
                    if (axis < 0)
                        return Fail(node, $"{node.Op} does not keep the split axis whole");
                    var attrs = node.Kind == OpKind.Reshape
                        ? node.Attrs.Select((a, i) => i == axis && a != "-1" ? "(" + a + ") / " + Degree : a)
                        : node.Attrs;
                    Keep(node, new Split(axis, x.Group), attrs);
                    return true;
                }
                case OpKind.Transpose:
                {
                    var x = S(node.Inputs[0]);
                    int a0 = int.Parse(node.Attrs[0]), a1 = int.Parse(node.Attrs[1]);
                    Keep(node, !x.IsSplit ? x : new Split(x.Axis == a0 ? a1 : x.Axis == a1 ? a0 : x.Axis, x.Group));
                    return true;
                }
                case OpKind.Select:
                {
                    var x = S(node.Inputs[0]);
                    var axis = int.Parse(node.Attrs[0]);
                    if (x.Axis == axis)
                        return Fail(node, "Select picks along the split axis");
                    Keep(node, !x.IsSplit ? x : new Split(x.Axis > axis ? x.Axis - 1 : x.Axis, x.Group));
                    return true;
                }
                case OpKind.Concat:
                {
                    var a = S(node.Inputs[0]);
                    if (S(node.Inputs[1]).Axis != a.Axis || (a.IsSplit && a.Axis == int.Parse(node.Attrs[0])))
                        return Fail(node, "Concat joins values split differently, or along the split axis");
                    Keep(node, a);
                    return true;
                }
                case OpKind.Embedding or OpKind.Call or OpKind.Loop:
                    if (inputs.Any(i => S(i).IsSplit))
                        return Fail(node, $"{node.Op} needs replicated inputs");
                    Keep(node, Split.Replicated);
                    return true;
                case OpKind.ParallelCopy or OpKind.AllReduce:
                    Keep(node, Split.Replicated);
                    return true;
                case OpKind.AllGather or OpKind.ReduceScatter or OpKind.Unsupported:
                    return Fail(node, $"the sharding pass has no rule for {node.Op}");
            }
            return Fail(node, $"the sharding pass has no rule for {node.Kind}");
        }

        /// <summary>
        /// Where a view puts the split: on the output axis whose dim is the split's group (whole heads), else on the first
        /// output axis whose suffix holds exactly the input's split suffix (a row-major view keeps it contiguous).
        /// </summary>
        private static int ViewAxis(EquatableArray<SymExpr> input, EquatableArray<SymExpr> output, Split split)
        {
            if (split.Group is { } group)
                for (var k = 0; k < output.Count; k++)
                    if (output[k].Equals(group))
                        return k;
            var suffix = Shapes.Product(input.Skip(split.Axis).ToEquatableArray());
            for (var k = 0; k < output.Count; k++)
                if (Shapes.Product(output.Skip(k).ToEquatableArray()).Equals(suffix))
                    return k;
            return -1;
        }
    }
}
