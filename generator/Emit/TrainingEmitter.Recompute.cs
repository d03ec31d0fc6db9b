using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;
using Qwen2VL.Generator.Passes;

namespace Qwen2VL.Generator.Emit;

// Selective activation checkpointing in the training code: the Recompute option, the buffers of recomputed values,
// the shared workspace and the kept-floats count (the plan itself is MemoryPlanner.Training).
internal sealed partial class TrainingEmitter
{
    /// <summary>A value's buffer: its kept slot, or for a recomputed value the workspace slot when Recompute is on.</summary>
    private string Buffer(int value, int work)
    {
        var node = _graph[value];
        var kept = $"TrainSlot({_train.Plan.SlotOfNode[value]}, {Dims(node)})";
        return _plan.Recomputed[value] && work >= 0 ? $"_recompute ? Workspace.Slot({work}, {Dims(node)}) : {kept}" : kept;
    }

    /// <summary>With Recompute on: grows the shared workspace slots to the largest value either pass puts in them.</summary>
    private void ReserveWorkspace(CodeWriter w)
    {
        if (!_plan.Any)
            return;
        w.Open("if (_recompute)");
        for (var slot = 0; slot < _plan.WorkSlots; slot++)
        {
            var sizes = _graph.Nodes.Where(n => _plan.ForwardWork[n.Id] == slot || _plan.BackwardWork[n.Id] == slot)
                .Select(n => EmitNames.Size(_graph, n.Id)).Distinct().ToList();
            var max = sizes.Skip(1).Aggregate(sizes[0], (a, b) => $"Math.Max({a}, {b})");
            w.Line($"Workspace.Reserve({slot}, {max});");
        }
        w.Close();
    }

    private void RecomputeOption(CodeWriter w)
    {
        var policy = RecomputePolicy.Describe(_graph.Recompute);
        w.Line("/// <summary>");
        w.Line($"/// Selective activation checkpointing (this module's policy: {policy}): when on, <see cref=\"ForwardTrain\"/> does not");
        w.Line("/// keep the outputs of the ops the policy covers and <see cref=\"Backward\"/> recomputes them just before their first use.");
        w.Line("/// Off by default; setting it sets it on every submodule runner. Gradients are the same either way (the same kernels).");
        w.Line("/// </summary>");
        w.Line("public bool Recompute");
        w.Line("{");
        w.Line("    get => _recompute;");
        w.Line("    set");
        w.Line("    {");
        w.Line("        _recompute = value;");
        foreach (var sub in _graph.Submodules)
            w.Line(sub.IsArray
                ? $"        foreach (var layer in {EmitNames.Field(sub.Field)}) layer.Recompute = value;"
                : $"        {EmitNames.Field(sub.Field)}.Recompute = value;");
        w.Line("    }");
        w.Line("}");
        if (_plan.Any)
        {
            w.Line();
            w.Line($"private TrainingWorkspace Workspace => _workspace ??= _ctx.TrainingWorkspace(\"{(_graph.Namespace.Length > 0 ? _graph.Namespace + "." : "")}{_graph.Name}\");");
        }
    }

    private void SavedActivations(CodeWriter w, List<Node> inputs)
    {
        var graph = _graph;
        w.Line("/// <summary>");
        w.Line("/// Floats of the values <see cref=\"ForwardTrain\"/> keeps for <see cref=\"Backward\"/> (this module's and its submodules'),");
        w.Line("/// at the dims of the last ForwardTrain, with recomputation on or off. Inputs are counted by whoever made them; the");
        w.Line("/// recompute workspace, one per module type, is <see cref=\"ComputeContext.TrainingWorkspaceFloats\"/>.");
        w.Line("/// </summary>");
        w.Open("public long SavedActivationFloats(bool recompute)");
        Prologue(w, inputs, saved: true);
        w.Line("long floats = 0;");
        foreach (var group in _train.Groups)
        {
            if (group.Kind == GroupKind.Call)
            {
                w.Line($"floats += {EmitNames.Field(graph[group.Output].Op)}.SavedActivationFloats(recompute);");
                continue;
            }
            if (group.Kind == GroupKind.Loop)
            {
                w.Line($"foreach (var layer in {EmitNames.Field(graph[group.Output].Op)}) floats += layer.SavedActivationFloats(recompute);");
                continue;
            }
            foreach (var value in new[] { group.Residual, group.Output }.Where(v => v >= 0 && _train.Plan.SlotOfNode[v] >= 0))
            {
                var size = $"(long)({EmitNames.Size(graph, value)})";
                w.Line(_plan.Recomputed[value]
                    ? $"if (!recompute) floats += {size}; // t{value} {graph[value].Op}: recomputed"
                    : $"floats += {size}; // t{value} {graph[value].Op}");
            }
        }
        w.Line("return floats;");
        w.Close();
    }
}
