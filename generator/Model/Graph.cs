using System.Linq;

namespace Qwen2VL.Generator.Model;

/// <summary>
/// A module's forward pass as a typed dataflow graph (SSA, in program order): the output of shape inference
/// and the input of fusion. Holds no Roslyn objects.
/// </summary>
public sealed record Graph(
    string Namespace,
    string Name,
    EquatableArray<DimInfo> Dims,
    EquatableArray<ConstDecl> Consts,
    EquatableArray<Node> Nodes,
    int Output,
    EquatableArray<SubmoduleDecl> Submodules,
    EquatableArray<OpInfo> Ops,
    EquatableArray<DiagnosticInfo> Diagnostics,
    int Recompute = RecomputePolicy.CheapOps,
    string FilePath = "")
{
    public Node this[int id] => Nodes[id];

    public bool HasErrors => Diagnostics.Count > 0;

    /// <summary>Whether a node attr names one of this module's [Const]s rather than being a literal or a size.</summary>
    public bool IsConst(string attr) => Consts.Any(c => c.Name == attr);

    /// <summary>Where a node's diagnostics land: its line in the module's file (nodes keep lines, not spans, so they stay cacheable).</summary>
    public LocationInfo? LocationOf(Node node)
    {
        if (FilePath.Length == 0 || node.Line <= 0)
            return null;
        var line = new Microsoft.CodeAnalysis.Text.LinePosition(node.Line - 1, 0);
        return new LocationInfo(FilePath, new Microsoft.CodeAnalysis.Text.TextSpan(0, 0), new Microsoft.CodeAnalysis.Text.LinePositionSpan(line, line));
    }
}

/// <summary>
/// A dim the runner binds: <c>config</c> (from config.json, with an optional default), <c>derived</c>
/// (a C# expression over other dims) or <c>input</c> (read from an input tensor's shape at call time).
/// </summary>
public sealed record DimInfo(string Name, string Kind, string? ConfigKey, int? Default, string? Expression, int InputIndex, int InputAxis);

/// <summary>
/// One value of the graph. <see cref="Kind"/> is what computes it (a closed set); <see cref="Op"/> is the op name for
/// ops, the field name for params and calls, the parameter name for inputs. <see cref="Attrs"/> are literal arguments as
/// C# text, or the name of a [Const] (see <see cref="Graph.IsConst"/>), which the runner passes from its field of that name.
/// Every value has a dtype.
/// </summary>
public sealed record Node(
    int Id,
    OpKind Kind,
    string Op,
    OpGroup Group,
    EquatableArray<int> Inputs,
    EquatableArray<string> Attrs,
    EquatableArray<SymExpr> Shape,
    DType DType,
    int Line,
    string Source)
{
    public string ShapeText => Shapes.Format(Shape);

    public bool IsLeaf => OpTable.IsLeaf(Kind);

    public bool IsCall => OpTable.IsCall(Kind);

    public bool IsView => OpTable.IsView(Kind);

    public bool IsInt => DType == DType.I64;
}

public static class Shapes
{
    public static string Format(EquatableArray<SymExpr> shape) => "[" + string.Join(", ", shape.Select(d => d.ToString())) + "]";

    public static SymExpr Product(EquatableArray<SymExpr> shape) => shape.Aggregate(SymExpr.Const(1), (a, d) => a * d);
}
