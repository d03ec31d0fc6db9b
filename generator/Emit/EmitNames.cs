using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>Names and size expressions shared by the emitters.</summary>
internal static class EmitNames
{
    /// <summary>The host local (or field) holding a node's tensor.</summary>
    public static string Var(Graph graph, int id)
    {
        var node = graph[id];
        return node.Kind switch
        {
            OpKind.Input => node.Op,
            OpKind.Param => Field(node.Op),
            _ => "t" + id,
        };
    }

    public static string Field(string member) => "_" + char.ToLowerInvariant(member[0]) + member.Substring(1);

    /// <summary>C# for the element count of a node.</summary>
    public static string Size(Graph graph, int id) => Shapes.Product(graph[id].Shape).ToCSharp();

    /// <summary>C# for the product of all dims but the last (the rows of a row-wise kernel).</summary>
    public static string Rows(Graph graph, int id)
    {
        var shape = graph[id].Shape;
        return shape.Take(shape.Count - 1).Aggregate(SymExpr.Const(1), (a, d) => a * d).ToCSharp();
    }

    public static string Last(Graph graph, int id) => graph[id].Shape[graph[id].Shape.Count - 1].ToCSharp();

    public static string Dim(Graph graph, int id, int axis) => graph[id].Shape[axis].ToCSharp();

    /// <summary>"Linear(x [N, Embed], …) → [N, 3*Embed]  (line 38)" for kernel comments.</summary>
    public static string Describe(Graph graph, int id)
    {
        var node = graph[id];
        var scope = Passes.ShapeInference.ScopeOf(graph);
        var args = string.Join(", ", node.Inputs.Select(i => Label(graph, i) + " " + scope.Display(graph[i].Shape)));
        return $"{node.Op}({args}) -> {scope.Display(node.Shape)}   (line {node.Line}: {Clip(node.Source)})";
    }

    private static string Label(Graph graph, int id)
    {
        var node = graph[id];
        return node.Kind switch
        {
            OpKind.Input => node.Op,
            OpKind.Param => node.Attrs[0],
            _ => "t" + id,
        };
    }

    /// <summary>A double as a round-tripping C# literal (<c>1E-06</c>, <c>1000000d</c>), the same text in every culture.</summary>
    public static string DoubleLiteral(double value)
    {
        if (double.IsInfinity(value))
            return value > 0 ? "double.PositiveInfinity" : "double.NegativeInfinity";
        var text = value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        return text.IndexOfAny(new[] { '.', 'E', 'e' }) >= 0 ? text : text + "d";
    }

    /// <summary>The kernel parameter that carries [Const] <paramref name="name"/> into an elementwise kernel.</summary>
    public static string ConstParam(string name) => "const" + name;

    private static string Clip(string text) => text.Length > 70 ? text.Substring(0, 67) + "..." : text;
}
