using System.Linq;
using System.Text;
using Qwen2VL.Generator.Model;
using Qwen2VL.Generator.Passes;

namespace Qwen2VL.Generator.Emit;

/// <summary>A text dump of the passes' output: dims, the typed graph, the backward steps, the fused groups and the memory plan.</summary>
internal static class GraphDumper
{
    public static string Dump(FusedGraph fused)
    {
        var graph = fused.Graph;
        var scope = ShapeInference.ScopeOf(graph);
        var sb = new StringBuilder();
        GraphAndBackward(graph, scope, sb);
        sb.Append("fusion\n");
        foreach (var group in fused.Groups)
        {
            var residual = group.Residual >= 0 ? $" (+ writes %{group.Residual})" : "";
            sb.Append($"  {group.Name} [{group.Kind.Word()}] nodes {string.Join(" ", group.Nodes.Select(n => "%" + n))} -> %{group.Output}{residual}\n");
        }
        sb.Append($"memory plan: {fused.Plan.SlotCount} arena slots\n");
        for (var n = 0; n < graph.Nodes.Count; n++)
            if (fused.Plan.SlotOfNode[n] >= 0)
                sb.Append($"  %{n} -> slot {fused.Plan.SlotOfNode[n]} ({scope.Display(graph[n].Shape)})\n");
        return sb.ToString();
    }

    /// <summary>The per-rank graph of the sharding pass (dims, typed graph, backward steps) as a constant, ShardedGraph.</summary>
    public static string ShardedSource(Graph perRank)
    {
        var sb = new StringBuilder();
        GraphAndBackward(perRank, ShapeInference.ScopeOf(perRank), sb);
        var w = KernelFileEmitter.Header(perRank, "Per-rank (tensor-parallel) pass dump");
        w.Open($"partial class {perRank.Name}");
        w.Line("/// <summary>The sharding pass's output: the graph one tensor-parallel rank runs (degree Tp) and its backward steps. Not lowered yet.</summary>");
        w.Line("public const string ShardedGraph = @\"" + sb.ToString().Replace("\"", "\"\"") + "\";");
        w.Close();
        return w.ToString();
    }

    private static void GraphAndBackward(Graph graph, DimScope scope, StringBuilder sb)
    {
        sb.Append("module ").Append(graph.Name).Append('\n');
        sb.Append("dims\n");
        foreach (var dim in graph.Dims)
        {
            var source = dim.Kind switch
            {
                "config" => "config " + dim.ConfigKey + (dim.Default is { } d ? " (default " + d + ")" : ""),
                "derived" => "= " + dim.Expression,
                "degree" => "tensor-parallel degree (bound per rank)",
                _ => $"input {dim.InputIndex} axis {dim.InputAxis}",
            };
            sb.Append("  ").Append(dim.Name).Append(": ").Append(source).Append('\n');
        }
        if (graph.Consts.Count > 0)
        {
            sb.Append("consts\n");
            foreach (var c in graph.Consts)
                sb.Append("  ").Append(c.Name).Append(": config ").Append(c.ConfigKey)
                    .Append(c.Default is { } d ? " (default " + EmitNames.DoubleLiteral(d) + ")" : "").Append('\n');
        }
        sb.Append("graph\n");
        foreach (var node in graph.Nodes)
        {
            var inputs = string.Join(", ", node.Inputs.Select(i => "%" + i));
            var attrs = node.Attrs.Count > 0 ? " {" + string.Join(", ", node.Attrs) + "}" : "";
            sb.Append($"  %{node.Id} = {OpTable.DumpWord(node.Kind)} {node.Op}({inputs}){attrs} : {scope.Display(node.Shape)} {node.DType}   ; line {node.Line}\n");
        }
        sb.Append("  return %").Append(graph.Output).Append('\n');
        // The autodiff pass: the backward steps from the gradient table and what each reads (the training plan's input).
        sb.Append("backward\n");
        foreach (var step in Autodiff.Steps(graph, Autodiff.Run(graph).NeedsGrad))
            sb.Append("  ").Append(step).Append('\n');
    }

    public static string AsSource(FusedGraph fused)
    {
        var graph = fused.Graph;
        var w = KernelFileEmitter.Header(graph, "Pass dump");
        w.Open($"partial class {graph.Name}");
        w.Line("/// <summary>The generator's view of this module: dims, typed graph, backward steps, fusion and memory plan.</summary>");
        w.Line("public const string FusedGraph = @\"" + Dump(fused).Replace("\"", "\"\"") + "\";");
        w.Close();
        return w.ToString();
    }
}
