using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>
/// Emits <c>{Module}.Runner</c>: binds dims from config.json, loads the weights, owns the arena planned by the
/// memory pass, and runs the fused groups in order, on the CPU kernels or the GPU kernels.
/// </summary>
internal static class RunnerEmitter
{
    /// <summary>Where a group's host code sends its work: the inference kernels and arena, or the training ones.</summary>
    internal sealed record HostTarget(string CpuClass, string GpuClass, string Slot, string ForwardMethod);

    internal static readonly HostTarget Inference = new(SharedKernelEmitter.CpuClass, SharedKernelEmitter.GpuClass, "Slot", "Forward");
    internal static readonly HostTarget Training = new(SharedKernelEmitter.CpuClass, SharedKernelEmitter.GpuClass, "TrainSlot", "ForwardTrain");

    public static string Emit(FusedGraph fused)
    {
        var graph = fused.Graph;
        var w = KernelFileEmitter.Header(graph, "Host runner", "using System.Linq;", "using ILGPU;", "using ILGPU.Runtime;");
        w.Open($"partial class {graph.Name}");
        w.Line($"/// <summary>Runs {graph.Name}.Forward with the generated kernels on a <see cref=\"ComputeContext\"/>.</summary>");
        w.Open("public sealed partial class Runner");
        w.Line("private readonly ComputeContext _ctx;");
        w.Line("private readonly string _prefix;");
        w.Line($"private readonly DeviceTensor?[] _slots = new DeviceTensor?[{fused.Plan.SlotCount}];");
        foreach (var dim in graph.Dims.Where(d => d.Kind != "input"))
            w.Line($"public readonly int {dim.Name};");
        foreach (var c in graph.Consts)
            w.Line($"public readonly float {c.Name};");
        foreach (var param in graph.Nodes.Where(n => n.Kind == OpKind.Param))
            w.Line($"private readonly DeviceTensor {EmitNames.Field(param.Op)};");
        foreach (var sub in graph.Submodules)
            w.Line($"private readonly {sub.TypeFullName}.Runner{(sub.IsArray ? "[]" : "")} {EmitNames.Field(sub.Field)};");
        KernelFields(w, fused);
        w.Line();

        Constructor(w, graph);
        w.Line();
        CheckSizesMethod(w, graph);
        w.Line();
        Forward(w, fused);
        w.Line();
        w.Line("/// <summary>Gives arena slot <paramref name=\"slot\"/> a view of the given shape, growing it when needed.</summary>");
        w.Open("private DeviceTensor Slot(int slot, params int[] shape)");
        w.Line("int length = 1;");
        w.Line("foreach (var d in shape) length *= d;");
        w.Line("var buffer = _slots[slot];");
        w.Open("if (buffer is null || buffer.Length < length)");
        w.Line("buffer?.Dispose();");
        w.Line("buffer = _slots[slot] = _ctx.Allocate(Math.Max(length, 1));");
        w.Close();
        w.Line("return buffer.Slice(0, length, shape);");
        w.Close();
        w.Close();
        w.Close();
        return w.ToString();
    }

    /// <summary>One lazily loaded GPU kernel delegate per kernel group.</summary>
    internal static void KernelFields(CodeWriter w, FusedGraph fused)
    {
        foreach (var group in fused.Groups)
            if (GroupLowering.Lower(fused, group, LoweringTarget.HostRunner) is { } spec)
                w.Line($"private Action<{spec.GpuTypeArguments}>? _{group.Name.Split('_')[0].ToLowerInvariant()};");
    }

    private static void Constructor(CodeWriter w, Graph graph)
    {
        w.Line(graph.Consts.Count > 0
            ? "/// <summary>Binds the dims and float consts from <paramref name=\"config\"/> and loads the weights under <paramref name=\"prefix\"/>.</summary>"
            : "/// <summary>Binds the dims from <paramref name=\"config\"/> and loads the weights under <paramref name=\"prefix\"/>.</summary>");
        w.Open("public Runner(ComputeContext ctx, WeightStore weights, ModelConfig config, string prefix = \"\")");
        w.Line("_ctx = ctx;");
        w.Line("_prefix = prefix;");
        foreach (var dim in graph.Dims)
        {
            if (dim.Kind == "config")
                w.Line(dim.Default is { } d ? $"{dim.Name} = config.GetInt(\"{dim.ConfigKey}\", {d});" : $"{dim.Name} = config.GetInt(\"{dim.ConfigKey}\");");
            else if (dim.Kind == "derived")
                w.Line($"{dim.Name} = {dim.Expression};");
        }
        foreach (var c in graph.Consts)
            w.Line(c.Default is { } d
                ? $"{c.Name} = (float)config.GetDouble(\"{c.ConfigKey}\", {EmitNames.DoubleLiteral(d)});"
                : $"{c.Name} = (float)config.GetDouble(\"{c.ConfigKey}\");");
        foreach (var param in graph.Nodes.Where(n => n.Kind == OpKind.Param))
            w.Line($"{EmitNames.Field(param.Op)} = weights.Load(ctx, prefix + \"{param.Attrs[0]}\", {string.Join(", ", param.Shape.Select(d => d.ToCSharp()))});");
        foreach (var sub in graph.Submodules)
        {
            var field = EmitNames.Field(sub.Field);
            if (sub.IsArray)
                w.Line($"{field} = Enumerable.Range(0, {sub.Count}).Select(i => new {sub.TypeFullName}.Runner(ctx, weights, config, prefix + \"{sub.Prefix}.\" + i + \".\")).ToArray();");
            else
                w.Line($"{field} = new {sub.TypeFullName}.Runner(ctx, weights, config, prefix + \"{sub.Prefix}.\");");
        }
        w.Close();
    }

    private static void Forward(CodeWriter w, FusedGraph fused)
    {
        var graph = fused.Graph;
        var inputs = graph.Nodes.Where(n => n.Kind == OpKind.Input).ToList();
        var parameters = string.Join(", ", inputs.Select(i => "DeviceTensor " + i.Op));
        var arguments = string.Join(", ", inputs.Select(i => i.Op));
        var sites = CausalSites(graph);
        w.Line("/// <summary>The forward pass. The result lives in this runner's arena until the next call.</summary>");
        if (sites.Count > 0)
        {
            w.Line($"public DeviceTensor Forward({parameters}) => Run({arguments}, null);");
            w.Line();
            w.Line("/// <summary>");
            w.Line("/// The forward pass over new positions with a KV cache: keys and values of the new positions are appended to");
            w.Line($"/// <paramref name=\"cache\"/> ({sites.Count} attention site{(sites.Count > 1 ? "s" : "")}) and attention sees every cached position;");
            w.Line("/// the padding mask then covers the cache: [batch, cache.Capacity].");
            w.Line("/// </summary>");
            w.Line($"public DeviceTensor Forward({parameters}, KvCache cache) => Run({arguments}, cache);");
            w.Line();
            w.Open($"private DeviceTensor Run({parameters}, KvCache? cache)");
        }
        else
        {
            w.Open($"public DeviceTensor Forward({parameters})");
        }
        foreach (var dim in graph.Dims.Where(d => d.Kind == "input"))
            w.Line($"int {dim.Name} = {inputs[dim.InputIndex].Op}.Shape.Length > {dim.InputAxis} ? {inputs[dim.InputIndex].Op}.Shape[{dim.InputAxis}] : -1;");
        var masks = new HashSet<int>(sites.Select(n => graph[n].Inputs[3]));
        foreach (var input in inputs)
        {
            var check = $"ShapeCheck.Expect(\"{graph.Name}\", \"{input.Op}\", {input.Op}, {(input.DType == DType.I64 ? "true" : "false")}, {string.Join(", ", input.Shape.Select(d => d.ToCSharp()))});";
            if (masks.Contains(input.Id))
            {
                w.Line("if (cache is null)");
                w.Line("    " + check);
                w.Line("else");
                w.Line($"    ShapeCheck.Expect(\"{graph.Name}\", \"{input.Op}\", {input.Op}, true, {input.Shape[0].ToCSharp()}, cache.Capacity);");
            }
            else
            {
                w.Line(check);
            }
        }
        foreach (var line in SizeChecks(graph))
            w.Line(line);
        foreach (var group in fused.Groups)
        {
            w.Line();
            HostGroup(w, fused, group, Inference);
        }
        if (sites.Count > 0)
        {
            w.Line();
            w.Line($"cache?.Advance({graph[graph[sites[0]].Inputs[0]].Shape[1].ToCSharp()});");
        }
        w.Line($"return {EmitNames.Var(graph, graph.Output)};");
        w.Close();
    }

    /// <summary>
    /// <c>Runner.CheckSizes(config, input dims…)</c>: binds the dims as the constructor and <c>Forward</c> do and runs
    /// Forward's size checks, with no weights and no device — so a test can bind the 72B config at 32K tokens.
    /// </summary>
    private static void CheckSizesMethod(CodeWriter w, Graph graph)
    {
        var inputDims = graph.Dims.Where(d => d.Kind == "input").ToList();
        w.Line("/// <summary>");
        w.Line("/// Binds the dims from <paramref name=\"config\"/> and the given input dims and checks, without weights or a device, what");
        w.Line("/// Forward checks first: that every value it computes fits a device buffer (at most 2^31 − 1 elements, ILGPU's 32-bit");
        w.Line("/// index). Throws a ModelException naming the value, its dims and their values otherwise. Submodules check their own.");
        w.Line("/// </summary>");
        w.Open($"public static void CheckSizes(ModelConfig config{string.Concat(inputDims.Select(d => ", int " + d.Name))})");
        foreach (var dim in graph.Dims)
        {
            if (dim.Kind == "config")
                w.Line(dim.Default is { } d ? $"int {dim.Name} = config.GetInt(\"{dim.ConfigKey}\", {d});" : $"int {dim.Name} = config.GetInt(\"{dim.ConfigKey}\");");
            else if (dim.Kind == "derived")
                w.Line($"int {dim.Name} = {dim.Expression};");
        }
        foreach (var line in SizeChecks(graph))
            w.Line(line);
        w.Close();
    }

    /// <summary>
    /// One check per distinct element count of a value that depends on the input dims, formed in 64 bits: the
    /// generated index arithmetic is 32-bit within a buffer, so a buffer must hold at most 2^31 − 1 elements.
    /// </summary>
    internal static List<string> SizeChecks(Graph graph)
    {
        var scope = Passes.ShapeInference.ScopeOf(graph);
        var inputDims = new HashSet<string>(graph.Dims.Where(d => d.Kind == "input").Select(d => d.Name));
        var seen = new List<SymExpr>();
        var lines = new List<string>();
        foreach (var node in graph.Nodes)
        {
            // Weights are sized by the config alone; a submodule call's value is named in the submodule's dims and checked there.
            if (node.Kind == OpKind.Param || OpTable.IsCall(node.Kind)) continue;
            var size = Shapes.Product(node.Shape);
            if (!size.Symbols.Any(inputDims.Contains) || seen.Contains(size)) continue;
            seen.Add(size);
            var elements = size.ToCSharpLong();
            var dims = string.Join(", ", size.Symbols.OrderBy(n => n, System.StringComparer.Ordinal).Select(n => $"{n} = {{{n}}}"));
            var what = $"{node.Op} {scope.Display(node.Shape)} (line {node.Line})";
            lines.Add($"if ({elements} > int.MaxValue) throw ShapeCheck.TooLarge(\"{graph.Name}\", \"{what}\", \"{size}\", {elements}, $\"{dims}\");");
        }
        return lines;
    }

    /// <summary>The causal attention nodes, in order: each is one KV-cache site.</summary>
    internal static List<int> CausalSites(Graph graph) =>
        graph.Nodes.Where(n => n.Kind == OpKind.CausalAttention).Select(n => n.Id).ToList();

    /// <param name="allocate">
    /// Where a materialised value's buffer comes from (C# for its declaration, or null when it is already declared);
    /// by default its arena slot.
    /// </param>
    internal static void HostGroup(CodeWriter w, FusedGraph fused, KernelGroup group, HostTarget target, System.Func<int, string?>? allocate = null)
    {
        var graph = fused.Graph;
        var output = graph[group.Output];
        var summary = string.Join(" + ", group.Nodes.Select(n => graph[n].Op));
        w.Line($"// {group.Name}: {summary} -> {Passes.ShapeInference.ScopeOf(graph).Display(output.Shape)}   (line {graph[group.Nodes[0]].Line})");
        allocate ??= value => $"{target.Slot}({fused.Plan.SlotOfNode[value]}, {string.Join(", ", graph[value].Shape.Select(d => d.ToCSharp()))})";
        foreach (var value in new[] { group.Residual, group.Output }.Where(v => v >= 0 && fused.Plan.SlotOfNode[v] >= 0))
            if (allocate(value) is { } buffer)
                w.Line($"var {EmitNames.Var(graph, value)} = {buffer};");
        switch (group.Kind)
        {
            case GroupKind.View:
                w.Line($"var {EmitNames.Var(graph, output.Id)} = {EmitNames.Var(graph, output.Inputs[0])}.Reshape({string.Join(", ", output.Shape.Select(d => d.ToCSharp()))});");
                return;
            case GroupKind.Call:
                w.Line($"var {EmitNames.Var(graph, output.Id)} = {EmitNames.Field(output.Op)}.{target.ForwardMethod}({string.Join(", ", output.Inputs.Select(i => EmitNames.Var(graph, i)))});");
                return;
            case GroupKind.Loop:
            {
                var carriedIndex = int.Parse(output.Attrs[output.Attrs.Count - 1]);
                var v = EmitNames.Var(graph, output.Id);
                var args = output.Inputs.Select((i, k) => k == carriedIndex ? v : EmitNames.Var(graph, i));
                w.Line($"var {v} = {EmitNames.Var(graph, output.Inputs[carriedIndex])};");
                w.Line($"foreach (var layer in {EmitNames.Field(output.Op)})");
                w.Line($"    {v} = layer.{target.ForwardMethod}({string.Join(", ", args)});");
                return;
            }
            case GroupKind.Attention:
                Attention(w, graph, output);
                return;
            case GroupKind.Gemm:
                Gemm(w, graph, group, target);
                return;
            case GroupKind.Elementwise or GroupKind.Norm or GroupKind.Softmax or GroupKind.Rotary or GroupKind.Copy:
                break; // a generated kernel, launched below
            case GroupKind.Unlowered:
                throw new UnloweredOpException(output, LoweringTarget.HostRunner, "no kernel to launch");
        }
        var spec = GroupLowering.Lower(fused, group, LoweringTarget.HostRunner)!;
        var field = "_" + group.Name.Split('_')[0].ToLowerInvariant();
        var cpuArgs = string.Join(", ", spec.Params.Select(p => p.HostValue));
        var gpuArgs = string.Join(", ", spec.Params.Select(p => p.Kind switch
        {
            ParamKind.Tensor => p.HostValue + ".View",
            ParamKind.IntTensor => p.HostValue + ".IntView",
            _ => p.HostValue,
        }));
        w.Line("if (_ctx.IsCpu)");
        w.Line($"    {target.CpuClass}.{spec.Name}({cpuArgs});");
        w.Open("else");
        w.Line($"{field} ??= _ctx.Accelerator.LoadAutoGroupedStreamKernel<{spec.GpuTypeArguments}>({target.GpuClass}.{spec.Name});");
        w.Line($"{field}({spec.Extent}, {gpuArgs});");
        w.Close();
    }

    private static void Gemm(CodeWriter w, Graph graph, KernelGroup group, HostTarget target)
    {
        var linear = graph[group.Nodes[0]];
        var x = EmitNames.Var(graph, linear.Inputs[0]);
        var weight = graph[linear.Inputs[1]];
        var output = EmitNames.Var(graph, group.Output);
        var m = EmitNames.Rows(graph, linear.Inputs[0]);
        var n = weight.Shape[0].ToCSharp();
        var k = weight.Shape[1].ToCSharp();
        var sizes = $"{m}, {n}, {k}";
        var w0 = EmitNames.Var(graph, weight.Id);
        if (!GemmLowering.HasEpilogue(graph, group))
        {
            w.Line($"_ctx.Gemm({x}, {w0}, {output}, {sizes});");
            return;
        }
        var operands = GemmLowering.Operands(graph, group);
        var name = GemmLowering.Epilogue(graph, group).Name;
        var cpuArgs = string.Join(", ", operands.Select(o => EmitNames.Var(graph, o.Node))
            .Concat(GemmLowering.NeedsCols(operands) ? new[] { n } : new string[0]));
        var gpuFields = string.Join(", ", operands.Select((o, i) => $"In{i} = {EmitNames.Var(graph, o.Node)}.View").Concat(new[] { $"Cols = {n}" }));
        w.Line("if (_ctx.IsCpu)");
        w.Line($"    CpuGemm.Run({x}, {w0}, {output}, {sizes}, new {target.CpuClass}.{name}({cpuArgs}));");
        w.Line("else");
        w.Line($"    _ctx.Gemm({x}, {w0}, {output}, {sizes}, new {target.GpuClass}.{name} {{ {gpuFields} }});");
    }

    private static void Attention(CodeWriter w, Graph graph, Node node)
    {
        var q = graph[node.Inputs[0]];
        // Provider order: q, k, v, output, then the segment table (vision) or the padding mask (decoder).
        var output = EmitNames.Var(graph, node.Id);
        var args = string.Join(", ", node.Inputs.Take(3).Select(i => EmitNames.Var(graph, i)).Concat(new[] { output, EmitNames.Var(graph, node.Inputs[3]) }));
        var d = q.Shape[q.Shape.Count - 1].ToCSharp();
        if (node.Kind == OpKind.Attention)
        {
            w.Line($"_ctx.AttentionSegments({args}, {q.Shape[0].ToCSharp()}, {q.Shape[1].ToCSharp()}, {d}, 1f / MathF.Sqrt({d}));");
            return;
        }
        var k = graph[node.Inputs[1]];
        var site = CausalSites(graph).IndexOf(node.Id);
        string D(Node n, int axis) => n.Shape[axis].ToCSharp();
        w.Line("if (cache is null)");
        w.Line($"    _ctx.AttentionCausal({args}, {D(q, 0)}, {D(q, 1)}, {D(q, 2)}, {D(k, 2)}, {d}, 1f / MathF.Sqrt({d}));");
        w.Open("else");
        w.Line($"cache.Append({site}, {EmitNames.Var(graph, k.Id)}, {EmitNames.Var(graph, node.Inputs[2])});");
        w.Line($"_ctx.AttentionCausalCached({EmitNames.Var(graph, q.Id)}, cache.Keys({site}), cache.Values({site}), {output}, {EmitNames.Var(graph, node.Inputs[3])}, " +
            $"{D(q, 0)}, {D(q, 1)}, cache.Length + {D(q, 1)}, cache.Capacity, {D(q, 2)}, {D(k, 2)}, {d}, 1f / MathF.Sqrt({d}));");
        w.Close();
    }
}
