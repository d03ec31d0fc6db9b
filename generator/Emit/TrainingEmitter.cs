using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;
using Qwen2VL.Generator.Passes;

namespace Qwen2VL.Generator.Emit;

/// <summary>
/// Emits the training half of a runner: <c>ForwardTrain</c> (every op its own kernel, every value kept in a
/// dedicated slot for the backward pass) and <c>Backward</c> (the gradient rules in reverse program order,
/// accumulating parameter gradients into an <c>IGradientSink</c> and returning the float inputs' gradients), plus the
/// training kernels (the unfused forward kernels and the backward kernels) in both forms. With the runner's
/// <c>Recompute</c> option on, the values the module's recompute policy covers are not kept: they live in a workspace
/// shared by the runners of the module's type, and <c>Backward</c> recomputes them with the same forward kernels just
/// before the first gradient rule that reads them (<see cref="MemoryPlanner.Training"/>).
/// </summary>
internal sealed partial class TrainingEmitter
{
    private readonly FusedGraph _train;
    private readonly Graph _graph;
    private readonly bool[] _needs;
    private readonly int[] _root;
    private readonly List<KernelSpec> _kernels = new();
    private readonly Dictionary<int, int> _gradSlot = new();
    private int _slots;
    private TrainingPlan _plan = null!;

    private TrainingEmitter(FusedGraph train)
    {
        _train = train;
        _graph = train.Graph;
        (_needs, _root) = Autodiff.Run(_graph);
    }

    /// <summary>The training host code (ForwardTrain, Backward, …); its kernels are in the shared kernel file.</summary>
    public static string Emit(FusedGraph train) => new TrainingEmitter(train).Host();

    /// <summary>The gradient kernels the backward pass launches (one per rule use; the shared file emits each distinct one once).</summary>
    public static List<KernelSpec> GradientKernels(FusedGraph train)
    {
        var emitter = new TrainingEmitter(train);
        emitter.Host();
        return emitter._kernels;
    }

    private string Host()
    {
        var graph = _graph;
        var inputs = graph.Nodes.Where(n => n.Kind == OpKind.Input).ToList();
        var body = new CodeWriter();
        Backward(body, inputs);

        var w = KernelFileEmitter.Header(graph, "Training host code", "using System.Linq;", "using ILGPU;", "using ILGPU.Runtime;");
        w.Open($"partial class {graph.Name}");
        w.Open("public sealed partial class Runner");
        w.Line($"private readonly DeviceTensor?[] _trainSlots = new DeviceTensor?[{_train.Plan.SlotCount}];");
        w.Line($"private readonly DeviceTensor?[] _gradSlots = new DeviceTensor?[{_slots}];");
        w.Line("private bool _recompute;");
        if (_plan.Any)
            w.Line("private TrainingWorkspace? _workspace;");
        foreach (var input in inputs)
            w.Line($"private DeviceTensor? _saved_{input.Op};");
        foreach (var group in _train.Groups.Where(g => g.Kind is GroupKind.Call or GroupKind.Loop))
            w.Line($"private DeviceTensor? _saved_t{group.Output};");
        RunnerEmitter.KernelFields(w, _train);
        foreach (var spec in _kernels.GroupBy(KernelField).Select(g => g.First()))
            w.Line($"private Action<{spec.GpuTypeArguments}>? {KernelField(spec)};");
        w.Line();
        RecomputeOption(w);
        w.Line();
        SavedActivations(w, inputs);
        w.Line();
        ForwardTrain(w, inputs);
        w.Line();
        foreach (var line in body.ToString().TrimEnd('\n').Split('\n'))
            w.Line(line);
        w.Line();
        SlotMethod(w, "TrainSlot", "_trainSlots", clear: false);
        w.Line();
        SlotMethod(w, "GradSlot", "_gradSlots", clear: true);
        w.Close();
        w.Close();
        return w.ToString();
    }

    private static string KernelField(KernelSpec spec) => "_" + spec.Name.ToLowerInvariant();

    private void ForwardTrain(CodeWriter w, List<Node> inputs)
    {
        var graph = _graph;
        w.Line("/// <summary>The forward pass for training: keeps every intermediate value until <see cref=\"Backward\"/> (with <see cref=\"Recompute\"/>: all but the recomputed ones).</summary>");
        w.Open($"public DeviceTensor ForwardTrain({string.Join(", ", inputs.Select(i => "DeviceTensor " + i.Op))})");
        Prologue(w, inputs, saved: false);
        foreach (var input in inputs)
            w.Line($"_saved_{input.Op} = {input.Op};");
        if (RunnerEmitter.CausalSites(graph).Count > 0)
            w.Line("KvCache? cache = null;");
        ReserveWorkspace(w);
        foreach (var group in _train.Groups)
        {
            w.Line();
            RunnerEmitter.HostGroup(w, _train, group, RunnerEmitter.Training, value => Buffer(value, _plan.ForwardWork[value]));
            if (group.Kind is GroupKind.Call or GroupKind.Loop)
                w.Line($"_saved_t{group.Output} = t{group.Output};");
        }
        w.Line($"return {EmitNames.Var(graph, graph.Output)};");
        w.Close();
    }

    private void Prologue(CodeWriter w, List<Node> inputs, bool saved)
    {
        var graph = _graph;
        if (saved)
            foreach (var input in inputs)
                w.Line($"var {input.Op} = _saved_{input.Op} ?? throw new InvalidOperationException(\"{graph.Name}.Backward needs a ForwardTrain first\");");
        foreach (var dim in graph.Dims.Where(d => d.Kind == "input"))
            w.Line($"int {dim.Name} = {inputs[dim.InputIndex].Op}.Shape.Length > {dim.InputAxis} ? {inputs[dim.InputIndex].Op}.Shape[{dim.InputAxis}] : -1;");
        if (!saved)
            foreach (var input in inputs)
                w.Line($"ShapeCheck.Expect(\"{graph.Name}\", \"{input.Op}\", {input.Op}, {(input.DType == DType.I64 ? "true" : "false")}, {string.Join(", ", input.Shape.Select(d => d.ToCSharp()))});");
    }

    private void Backward(CodeWriter w, List<Node> inputs)
    {
        var graph = _graph;
        var output = graph[graph.Output];
        w.Line("/// <summary>");
        w.Line("/// Back-propagates <paramref name=\"dOutput\"/> through the last <see cref=\"ForwardTrain\"/>: parameter gradients are");
        w.Line("/// added into <paramref name=\"grads\"/> (frozen parameters: null, skipped); returns the gradients of the float inputs");
        w.Line("/// (null for integer inputs), valid until the next call.");
        w.Line("/// </summary>");
        w.Open("public DeviceTensor?[] Backward(DeviceTensor dOutput, IGradientSink grads)");
        // Gradient buffers: views share their source's; parameters come from the sink.
        var gradients = new CodeWriter();
        foreach (var node in graph.Nodes.Where(n => _needs[n.Id]))
        {
            if (_root[node.Id] != node.Id)
                gradients.Line($"var g{node.Id} = g{_root[node.Id]}?.Reshape({Dims(node)});");
            else if (node.Kind == OpKind.Param)
                gradients.Line($"var g{node.Id} = grads.GradientOf(_prefix + \"{node.Attrs[0]}\");");
            else
                gradients.Line($"DeviceTensor? g{node.Id} = {NewGrad(node)};");
        }
        // The backward steps, in reverse program order, from the gradient table: what each step's rules read decides
        // what is kept and what is recomputed before it.
        var steps = Autodiff.Steps(graph, _needs);
        if (steps.FirstOrDefault(s => s.Missing is not null) is { } incomplete)
            throw new GradientRuleException(incomplete.Node, graph.Ops.First(o => o.Name == incomplete.Node.Op),
                $"it has no row for d{incomplete.Missing}, which the backward pass needs (write \"d{incomplete.Missing} = …\" in Grad)");
        var rules = new List<(Node Node, string Code)>();
        foreach (var step in steps)
        {
            var rule = new CodeWriter();
            Rule(rule, step);
            rules.Add((step.Node, rule.ToString()));
        }
        _plan = MemoryPlanner.Training(_train, Autodiff.Recomputable(_train), steps.Select(s => s.Reads).ToList());
        var read = new bool[graph.Nodes.Count];
        foreach (var step in steps)
            foreach (var v in step.Reads)
                read[_train.Plan.AliasOf[v]] = true;
        foreach (var v in _plan.RecomputeBefore.SelectMany(r => r))
            foreach (var input in graph[v].Inputs)
                read[_train.Plan.AliasOf[input]] = true;

        Prologue(w, inputs, saved: true);
        ReserveWorkspace(w);
        // The kept values (the slots ForwardTrain wrote) and the buffers of the recomputed ones; values no rule reads are skipped.
        foreach (var group in _train.Groups)
        {
            var o = graph[group.Output];
            if (group.Kind is GroupKind.Call or GroupKind.Loop)
                w.Line($"var t{o.Id} = _saved_t{o.Id}!;");
            else if (!read[_train.Plan.AliasOf[o.Id]])
                continue;
            else if (group.Kind == GroupKind.View)
                w.Line($"var t{o.Id} = {EmitNames.Var(graph, o.Inputs[0])}.Reshape({Dims(o)});");
            else
                w.Line($"var t{o.Id} = {Buffer(o.Id, _plan.BackwardWork[o.Id])};");
        }
        w.Line($"ShapeCheck.Expect(\"{graph.Name}\", \"dOutput\", dOutput, false, {ShapeOf(output)});");
        foreach (var line in gradients.ToString().TrimEnd('\n').Split('\n'))
            w.Line(line);
        w.Line($"_ctx.Copy(dOutput, g{graph.Output}!);");
        for (var r = 0; r < rules.Count; r++)
        {
            var node = rules[r].Node;
            if (_plan.RecomputeBefore[r].Count > 0)
            {
                w.Line();
                w.Line("// Recomputed for the rule below (not kept by ForwardTrain when Recompute is on).");
                w.Open("if (_recompute)");
                for (var k = 0; k < _plan.RecomputeBefore[r].Count; k++)
                {
                    if (k > 0)
                        w.Line();
                    var value = _plan.RecomputeBefore[r][k];
                    RunnerEmitter.HostGroup(w, _train, _train.Groups.First(g => g.Output == value), RunnerEmitter.Training, _ => null);
                }
                w.Close();
            }
            w.Line();
            w.Line($"// d/d{node.Op} (line {node.Line}): {Clip(node.Source)}");
            foreach (var line in rules[r].Code.TrimEnd('\n').Split('\n'))
                w.Line(line);
        }
        w.Line($"return new DeviceTensor?[] {{ {string.Join(", ", inputs.Select(i => _needs[i.Id] ? $"g{i.Id}" : "null"))} }};");
        w.Close();
    }

    private string NewGrad(Node node) => $"GradSlot({Slot(node.Id)}, {ShapeOf(node)})";

    /// <summary>A node's shape as C# arguments; a submodule's output is in the child's dims, so it is read from the saved tensor.</summary>
    private static string ShapeOf(Node node) => node.Kind is OpKind.Call or OpKind.Loop ? $"t{node.Id}.Shape" : Dims(node);

    private int Slot(int key) => _gradSlot.TryGetValue(key, out var s) ? s : _gradSlot[key] = _slots++;

    private string Scratch(string shape) => $"GradSlot({_slots++}, {shape})";

    private static string Dims(Node node) => string.Join(", ", node.Shape.Select(d => d.ToCSharp()));

    private string V(int id) => EmitNames.Var(_graph, id);

    private bool Wants(int input) => _needs[input];

    /// <summary>The gradient rule of one node: adds its output gradient's contribution into its inputs' gradients.</summary>
    private void Rule(CodeWriter w, BackwardStep step)
    {
        var node = step.Node;
        var graph = _graph;
        var dy = $"g{node.Id}!";
        if (node.Kind == OpKind.Call)
        {
            w.Line($"var d{node.Id} = {EmitNames.Field(node.Op)}.Backward({dy}, grads);");
            for (var k = 0; k < node.Inputs.Count; k++)
                if (Wants(node.Inputs[k]))
                    w.Line($"if (g{node.Inputs[k]} is not null) GradOps.Add(_ctx, g{node.Inputs[k]}, d{node.Id}[{k}]!);");
            return;
        }
        if (node.Kind == OpKind.Loop)
        {
            var carried = int.Parse(node.Attrs[node.Attrs.Count - 1]);
            w.Line($"DeviceTensor carried{node.Id} = {dy};");
            w.Open($"for (int layer = {EmitNames.Field(node.Op)}.Length - 1; layer >= 0; layer--)");
            w.Line($"var d = {EmitNames.Field(node.Op)}[layer].Backward(carried{node.Id}, grads);");
            for (var k = 0; k < node.Inputs.Count; k++)
                if (k != carried && Wants(node.Inputs[k]))
                    w.Line($"if (g{node.Inputs[k]} is not null) GradOps.Add(_ctx, g{node.Inputs[k]}, d[{k}]!);");
            w.Line($"carried{node.Id} = d[{carried}]!;");
            w.Close();
            if (Wants(node.Inputs[carried]))
                w.Line($"if (g{node.Inputs[carried]} is not null) GradOps.Add(_ctx, g{node.Inputs[carried]}, carried{node.Id});");
            return;
        }
        // One gradient rule per op kind; no default arm, so a kind without one does not compile.
        switch (node.Kind)
        {
            case OpKind.Add or OpKind.Mul or OpKind.Scale or OpKind.QuickGelu or OpKind.Gelu or OpKind.Silu or OpKind.Sigmoid or OpKind.Pointwise:
                Elementwise(w, step, dy);
                return;
            case OpKind.Linear:
                Linear(w, node, dy);
                return;
            case OpKind.LayerNorm or OpKind.RmsNorm:
                Norm(w, node, dy);
                return;
            case OpKind.Softmax:
                Launch(w, BackwardKernels.Softmax(graph, node, $"g{node.Inputs[0]}!", dy), $"g{node.Inputs[0]}");
                return;
            case OpKind.VisionRotary or OpKind.MRope:
                Launch(w, BackwardKernelsMovement.Rotary(_train, node, $"g{node.Inputs[0]}!", dy), $"g{node.Inputs[0]}");
                return;
            case OpKind.Attention or OpKind.CausalAttention:
                Attention(w, node, dy);
                return;
            case OpKind.Transpose or OpKind.Select or OpKind.Concat or OpKind.Embedding:
                for (var k = 0; k < node.Inputs.Count; k++)
                    if (Wants(node.Inputs[k]))
                        Launch(w, BackwardKernelsMovement.Copy(_train, node, k, $"g{node.Inputs[k]}!", dy), $"g{node.Inputs[k]}");
                return;
            case OpKind.Reshape or OpKind.SplitHeads or OpKind.MergeHeads:
            case OpKind.Input or OpKind.Param or OpKind.Call or OpKind.Loop:
                throw new System.InvalidOperationException($"{node.Kind} has no gradient rule of its own (views share their source's gradient; calls are handled above)");
            case OpKind.Unsupported:
                throw new UnloweredOpException(node, LoweringTarget.HostRunner, "no gradient rule");
            case OpKind.ParallelCopy or OpKind.AllReduce or OpKind.AllGather or OpKind.ReduceScatter:
                throw new UnloweredOpException(node, LoweringTarget.HostRunner, "collectives are not lowered yet (no sharding pass)");
        }
    }

    private void Elementwise(CodeWriter w, BackwardStep step, string dy)
    {
        var node = step.Node;
        var op = _graph.Ops.First(o => o.Name == node.Op);
        foreach (var rule in step.Rules)
        {
            var k = rule.Index;
            var input = node.Inputs[k];
            if (!Wants(input))
                continue;
            if (_graph[input].Shape.Equals(node.Shape))
            {
                Launch(w, BackwardKernels.Elementwise(_graph, op, node, rule, $"g{input}!", dy, overwrite: false), $"g{input}");
                continue;
            }
            // A broadcast operand (a row vector): per-element contributions into a scratch, then summed over rows.
            var scratch = $"s{node.Id}_{k}";
            w.Line($"var {scratch} = {Scratch(Dims(node))};");
            Launch(w, BackwardKernels.Elementwise(_graph, op, node, rule, scratch, dy, overwrite: true), null);
            var cols = EmitNames.Size(_graph, input);
            w.Line($"if (g{input} is not null) _ctx.ColumnSum({scratch}, g{input}, ({EmitNames.Size(_graph, node.Id)}) / ({cols}), {cols}, accumulate: true);");
        }
    }

    private void Linear(CodeWriter w, Node node, string dy)
    {
        var x = node.Inputs[0];
        var weight = _graph[node.Inputs[1]];
        var m = EmitNames.Rows(_graph, x);
        var n = weight.Shape[0].ToCSharp();
        var k = weight.Shape[1].ToCSharp();
        if (Wants(x))
            w.Line($"if (g{x} is not null) _ctx.GemmNN({dy}, {V(weight.Id)}, g{x}, {m}, {k}, {n}, accumulate: true);");
        if (Wants(weight.Id))
            w.Line($"if (g{weight.Id} is not null) _ctx.GemmTN({dy}, {V(x)}, g{weight.Id}, {n}, {k}, {m}, accumulate: true);");
        if (node.Inputs.Count > 2 && Wants(node.Inputs[2]))
            w.Line($"if (g{node.Inputs[2]} is not null) _ctx.ColumnSum({dy}, g{node.Inputs[2]}, {m}, {n}, accumulate: true);");
    }

    private void Norm(CodeWriter w, Node node, string dy)
    {
        var rows = $"r{node.Id}";
        w.Line($"var {rows} = {Scratch(Dims(node))};");
        var dx = Wants(node.Inputs[0]) ? $"g{node.Inputs[0]}!" : Scratch(Dims(node));
        Launch(w, BackwardKernels.Norm(_graph, node, dx, rows, dy), null);
        var count = EmitNames.Rows(_graph, node.Id);
        var d = EmitNames.Last(_graph, node.Id);
        if (Wants(node.Inputs[1]))
            w.Line($"if (g{node.Inputs[1]} is not null) _ctx.ColumnSum({rows}, g{node.Inputs[1]}, {count}, {d}, accumulate: true);");
        if (node.Inputs.Count > 2 && Wants(node.Inputs[2]))
            w.Line($"if (g{node.Inputs[2]} is not null) _ctx.ColumnSum({dy}, g{node.Inputs[2]}, {count}, {d}, accumulate: true);");
    }

    private void Attention(CodeWriter w, Node node, string dy)
    {
        var q = _graph[node.Inputs[0]];
        var k = _graph[node.Inputs[1]];
        var (dq, dk, dv) = ($"aq{node.Id}", $"ak{node.Id}", $"av{node.Id}");
        w.Line($"var {dq} = {Scratch(Dims(q))};");
        w.Line($"var {dk} = {Scratch(Dims(k))};");
        w.Line($"var {dv} = {Scratch(Dims(_graph[node.Inputs[2]]))};");
        var d = q.Shape[q.Shape.Count - 1].ToCSharp();
        var args = $"{V(q.Id)}, {V(k.Id)}, {V(node.Inputs[2])}, {dy}, {dq}, {dk}, {dv}, {V(node.Inputs[3])}";
        if (node.Kind == OpKind.Attention)
            w.Line($"_ctx.AttentionSegmentsBackward({args}, {q.Shape[0].ToCSharp()}, {q.Shape[1].ToCSharp()}, {d}, 1f / MathF.Sqrt({d}));");
        else
            w.Line($"_ctx.AttentionCausalBackward({args}, {q.Shape[0].ToCSharp()}, {q.Shape[1].ToCSharp()}, {q.Shape[2].ToCSharp()}, {k.Shape[2].ToCSharp()}, {d}, 1f / MathF.Sqrt({d}));");
        foreach (var (input, grad) in new[] { (node.Inputs[0], dq), (node.Inputs[1], dk), (node.Inputs[2], dv) })
            if (Wants(input))
                w.Line($"if (g{input} is not null) GradOps.Add(_ctx, g{input}, {grad});");
    }

    /// <summary>Calls a backward kernel on the CPU or launches it on the GPU (skipped when the target gradient is null).</summary>
    private void Launch(CodeWriter w, KernelSpec spec, string? guard)
    {
        _kernels.Add(spec);
        var field = KernelField(spec);
        var cpuArgs = string.Join(", ", spec.Params.Select(p => p.HostValue));
        var gpuArgs = string.Join(", ", spec.Params.Select(p => p.Kind switch
        {
            ParamKind.Tensor => p.HostValue + ".View",
            ParamKind.IntTensor => p.HostValue + ".IntView",
            _ => p.HostValue,
        }));
        if (guard is not null)
            w.Open($"if ({guard} is not null)");
        w.Line("if (_ctx.IsCpu)");
        w.Line($"    {SharedKernelEmitter.CpuClass}.{spec.Name}({cpuArgs});");
        w.Open("else");
        w.Line($"{field} ??= _ctx.Accelerator.LoadAutoGroupedStreamKernel<{spec.GpuTypeArguments}>({SharedKernelEmitter.GpuClass}.{spec.Name});");
        w.Line($"{field}({spec.Extent}, {gpuArgs});");
        w.Close();
        if (guard is not null)
            w.Close();
    }

    private static void SlotMethod(CodeWriter w, string name, string slots, bool clear)
    {
        w.Open($"private DeviceTensor {name}(int slot, params int[] shape)");
        w.Line("int length = 1;");
        w.Line("foreach (var d in shape) length *= d;");
        w.Line($"var buffer = {slots}[slot];");
        w.Open("if (buffer is null || buffer.Length < length)");
        w.Line("buffer?.Dispose();");
        w.Line($"buffer = {slots}[slot] = _ctx.Allocate(Math.Max(length, 1));");
        w.Close();
        w.Line(clear ? "var view = buffer.Slice(0, length, shape);" : "return buffer.Slice(0, length, shape);");
        if (clear)
        {
            w.Line("_ctx.Clear(view);");
            w.Line("return view;");
        }
        w.Close();
    }

    private static string Clip(string text) => text.Length > 80 ? text.Substring(0, 77) + "..." : text;
}
