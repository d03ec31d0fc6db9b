using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>
/// Lowers a fused group to a <see cref="KernelSpec"/>: the GPU body (one thread per output element or row) and the
/// vectorised CPU body. One method per group kind, so a kind without a lowering does not compile.
/// </summary>
internal static partial class GroupLowering
{
    /// <summary>
    /// The kernel of a group for <paramref name="target"/>, or null for groups the host runs itself (GEMM through the
    /// runtime with a generated epilogue, attention providers, views, submodule calls). No default arm: a group kind
    /// without a lowering does not compile; an op no target knows throws <see cref="UnloweredOpException"/> (QVL0901).
    /// </summary>
    public static KernelSpec? Lower(FusedGraph fused, KernelGroup group, LoweringTarget target) => group.Kind switch
    {
        GroupKind.Elementwise => Elementwise(fused.Graph, group),
        GroupKind.Norm => Norm(fused.Graph, group),
        GroupKind.Softmax => Softmax(fused.Graph, group),
        GroupKind.Rotary => Rotary(fused.Graph, group),
        GroupKind.Copy => Copy(fused.Graph, group, target),
        GroupKind.Gemm or GroupKind.Attention or GroupKind.View or GroupKind.Call or GroupKind.Loop => null,
        GroupKind.Unlowered => throw new UnloweredOpException(fused.Graph[group.Output], target,
            "the op is declared, but the generator has no op kind for it (a custom op must be elementwise with a Scalar formula)"),
    };

    private static IEnumerable<string> Comment(Graph graph, KernelGroup group, string extra)
    {
        yield return $"{group.Name}: {group.Kind.Word()}{extra}";
        foreach (var n in group.Nodes)
            yield return "  " + EmitNames.Describe(graph, n);
    }

    /// <summary>Inputs read by the group that it does not compute itself, in first-use order.</summary>
    internal static List<int> ExternalInputs(Graph graph, KernelGroup group)
    {
        var inside = new HashSet<int>(group.Nodes);
        var result = new List<int>();
        foreach (var n in group.Nodes)
            foreach (var i in graph[n].Inputs)
                if (!inside.Contains(i) && !result.Contains(i))
                    result.Add(i);
        return result;
    }

    /// <summary>The scalar formula of a node with its operand expressions substituted, for one target.</summary>
    internal static string Formula(Graph graph, OpFormulas formulas, int node, IReadOnlyList<string> operands, FormulaTarget target)
    {
        var (formula, names) = formulas.Of(graph[node]);
        var map = new Dictionary<string, string>();
        for (var i = 0; i < names.Count; i++)
            map[names[i]] = i < operands.Count ? operands[i] : AttrOperand(graph, graph[node], i - operands.Count, target);
        return FormulaEmitter.Lower(formula, map, target);
    }

    /// <summary>A literal attr goes into the formula; a [Const] is read from its kernel parameter (see <see cref="ConstParams"/>).</summary>
    private static string AttrOperand(Graph graph, Node node, int index, FormulaTarget target)
    {
        var attr = node.Attrs[index];
        var value = graph.IsConst(attr) ? EmitNames.ConstParam(attr) : attr;
        return target == FormulaTarget.CpuVector ? $"new Vector<float>({value})" : value;
    }

    /// <summary>One float kernel parameter per [Const] the nodes' formulas read, in first-use order.</summary>
    internal static void ConstParams(Graph graph, KernelSpec spec, IEnumerable<Node> nodes)
    {
        foreach (var attr in nodes.SelectMany(n => n.Attrs).Where(graph.IsConst).Distinct())
            spec.Params.Add(new KernelParam(EmitNames.ConstParam(attr), ParamKind.Float, attr));
    }

    private static KernelSpec Elementwise(Graph graph, KernelGroup group)
    {
        var output = group.Output;
        var externals = ExternalInputs(graph, group);
        var outShape = graph[output].Shape;
        var spec = new KernelSpec(group.Name, Comment(graph, group, ""), EmitNames.Size(graph, output));
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, EmitNames.Var(graph, output)));
        var broadcast = new List<int>();
        for (var k = 0; k < externals.Count; k++)
        {
            spec.Params.Add(new KernelParam("in" + k, ParamKind.Tensor, EmitNames.Var(graph, externals[k])));
            if (!graph[externals[k]].Shape.Equals(outShape))
                broadcast.Add(k);
        }
        foreach (var k in broadcast)
            spec.Params.Add(new KernelParam("in" + k + "Size", ParamKind.Int, EmitNames.Size(graph, externals[k])));
        spec.Params.Add(new KernelParam("size", ParamKind.Int, EmitNames.Size(graph, output)));
        ConstParams(graph, spec, group.Nodes.Select(n => graph[n]));

        var formulas = new OpFormulas(graph);
        var vectorizable = group.Nodes.All(n => FormulaEmitter.IsVectorizable(formulas.Of(graph[n]).Formula));
        string Operand(int input, string prefix) => externals.Contains(input) ? prefix + "in" + externals.IndexOf(input) : "v" + input;

        // GPU: one thread per element.
        for (var k = 0; k < externals.Count; k++)
            spec.GpuBody.Add($"float vin{k} = in{k}[{(broadcast.Contains(k) ? $"index % in{k}Size" : "index")}];");
        foreach (var n in group.Nodes)
            spec.GpuBody.Add($"float v{n} = {Formula(graph, formulas, n, graph[n].Inputs.Select(i => Operand(i, "v")).ToList(), FormulaTarget.Gpu)};");
        spec.GpuBody.Add($"output[index] = v{output};");

        // CPU: segments that never cross a broadcast operand's period; Vector<float> inside a segment.
        var cpu = spec.CpuBody;
        cpu.Add(broadcast.Count > 0
            ? $"int segment = Math.Max(1, {MinOf(broadcast.Select(k => $"in{k}Size").ToList())});"
            : "int segment = Math.Max(1, Math.Min(size, 16384));");
        cpu.Add("int segments = (size + segment - 1) / segment;");
        cpu.Add("void Segment(int s)");
        cpu.Add("{");
        cpu.Add("    int start = s * segment, length = Math.Min(segment, size - start);");
        cpu.Add("    var o = output.Span.Slice(start, length);");
        for (var k = 0; k < externals.Count; k++)
            cpu.Add($"    ReadOnlySpan<float> in{k}Row = in{k}.Span.Slice({(broadcast.Contains(k) ? $"start % in{k}Size" : "start")}, length);");
        cpu.Add("    int j = 0;");
        if (vectorizable)
        {
            cpu.Add("    for (; j <= length - Vector<float>.Count; j += Vector<float>.Count)");
            cpu.Add("    {");
            for (var k = 0; k < externals.Count; k++)
                cpu.Add($"        var vin{k} = new Vector<float>(in{k}Row.Slice(j));");
            foreach (var n in group.Nodes)
                cpu.Add($"        var v{n} = {Formula(graph, formulas, n, graph[n].Inputs.Select(i => Operand(i, "v")).ToList(), FormulaTarget.CpuVector)};");
            cpu.Add($"        v{output}.CopyTo(o.Slice(j));");
            cpu.Add("    }");
        }
        cpu.Add("    for (; j < length; j++)");
        cpu.Add("    {");
        for (var k = 0; k < externals.Count; k++)
            cpu.Add($"        float vin{k} = in{k}Row[j];");
        foreach (var n in group.Nodes)
            cpu.Add($"        float v{n} = {Formula(graph, formulas, n, graph[n].Inputs.Select(i => Operand(i, "v")).ToList(), FormulaTarget.CpuScalar)};");
        cpu.Add($"        o[j] = v{output};");
        cpu.Add("    }");
        cpu.Add("}");
        cpu.Add("if (segments < 4) for (int s = 0; s < segments; s++) Segment(s);");
        cpu.Add("else Parallel.For(0, segments, Segment);");
        return spec;
    }

    private static string MinOf(List<string> values) =>
        values.Count == 1 ? values[0] : $"Math.Min({values[0]}, {MinOf(values.Skip(1).ToList())})";
}
