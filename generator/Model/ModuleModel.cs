namespace Qwen2VL.Generator.Model;

// The parser's output: what a [Module] class declares, with no Roslyn symbols or syntax (cacheable).

/// <summary>A parsed [Module] class.</summary>
public sealed record ModuleModel(
    string Namespace,
    string Name,
    string FullName,
    bool IsPartial,
    LocationInfo? Location,
    EquatableArray<DimDecl> Dims,
    EquatableArray<ConstDecl> Consts,
    EquatableArray<ParamDecl> Params,
    EquatableArray<SubmoduleDecl> Submodules,
    ForwardDecl? Forward,
    EquatableArray<DiagnosticInfo> Diagnostics,
    int Recompute = RecomputePolicy.CheapOps,
    EquatableArray<int> TensorParallel = default)
{
    /// <summary>
    /// The collectives the sharding pass inserts (ParallelCopy, AllReduce), with their gradient rows parsed; read only
    /// for modules that split a param (empty otherwise).
    /// </summary>
    public EquatableArray<OpInfo> ShardOps { get; init; } = EquatableArray<OpInfo>.Empty;
}

/// <summary>A [Dim]: bound from config (<see cref="ConfigKey"/>) or derived (<see cref="Expression"/>).</summary>
public sealed record DimDecl(string Name, string? ConfigKey, int? Default, string? Expression, LocationInfo? Location);

/// <summary>
/// A [Const]: a float bound from config (<see cref="Default"/> when the key is absent, null = required). Ops take it
/// by name: the graph's attrs hold <see cref="Name"/>, the runner a field of that name, the kernels an argument.
/// </summary>
public sealed record ConstDecl(string Name, string ConfigKey, double? Default, LocationInfo? Location);

/// <summary>
/// A [Param] weight with its checkpoint name and dim expressions, and its tensor-parallel split: <see cref="Shard"/>
/// is the DSL's <c>Shard</c> enum value (<see cref="ShardKind"/>), <see cref="ShardGroups"/> the dim expression of the
/// whole groups the split must respect (null: the sharded axis itself).
/// </summary>
public sealed record ParamDecl(string Field, string CheckpointName, EquatableArray<string> Shape, LocationInfo? Location,
    int Shard = ShardKind.Replicated, string? ShardGroups = null);

/// <summary>The DSL's <c>Shard</c> enum, by value (the generator does not reference the DSL assembly).</summary>
public static class ShardKind
{
    public const int Replicated = 0, Column = 1, Row = 2, Vocab = 3;

    public static string Name(int kind) => kind switch
    {
        Column => "Column",
        Row => "Row",
        Vocab => "Vocab",
        _ => "Replicated",
    };

    /// <summary>The axis the kind splits: axis 0 (output features, vocabulary rows), axis 1 for row-parallel.</summary>
    public static int Axis(int kind) => kind == Row ? 1 : 0;
}

/// <summary>A [Submodule] child, or an array of them with a dim-given count.</summary>
public sealed record SubmoduleDecl(
    string Field, string TypeFullName, string TypeName, string Prefix, bool IsArray, string? Count, LocationInfo? Location);

/// <summary>The Forward method: its tensor parameters and body.</summary>
public sealed record ForwardDecl(EquatableArray<InputDecl> Inputs, EquatableArray<Stmt> Body, LocationInfo? Location);

/// <summary>A Forward parameter with its [Shape].</summary>
public sealed record InputDecl(string Name, EquatableArray<string> Shape, DType DType, LocationInfo? Location);

/// <summary>What the generator knows about an op, read from its [Op] attribute and signature; <see cref="Kind"/> places it in the closed set.</summary>
public sealed record OpInfo(
    string Name,
    OpKind Kind,
    OpGroup Group,
    string ShapeRule,
    string? Scalar,
    string? Grad,
    EquatableArray<OpParameter> Parameters)
{
    /// <summary>The op's row of the gradient table, parsed from <see cref="Grad"/>: one assignment per differentiable operand.</summary>
    public EquatableArray<GradAssign> GradRules { get; init; } = EquatableArray<GradAssign>.Empty;
}

/// <summary>
/// One derivative of an op's gradient table: <c>d&lt;Operand&gt; = Value</c>. <see cref="Operand"/> is the tensor
/// parameter's name and <see cref="Index"/> its position among the op's tensor parameters (the node's input);
/// <see cref="Value"/> is a DSL expression over the operands, <c>y</c>, <c>dy</c> and the scalar arguments
/// (<see cref="Text"/> is its source).
/// </summary>
public sealed record GradAssign(string Operand, int Index, Expr Value, string Text);

/// <summary>An op parameter: its name and kind (Tensor, OptionalTensor, Float, Int, IntArray).</summary>
public sealed record OpParameter(string Name, string Kind);

// Statements of Forward.
public abstract record Stmt(LocationInfo? Location, string Text);

public sealed record LetStmt(string Name, Expr Value, LocationInfo? Location, string Text) : Stmt(Location, Text);

public sealed record AssignStmt(string Name, Expr Value, LocationInfo? Location, string Text) : Stmt(Location, Text);

public sealed record ReturnStmt(Expr Value, LocationInfo? Location, string Text) : Stmt(Location, Text);

/// <summary><c>for (int i = 0; i &lt; Layers.Length; i++) x = Layers[i].Forward(x, …);</c></summary>
public sealed record LoopStmt(string Target, SubCallExpr Call, LocationInfo? Location, string Text) : Stmt(Location, Text);

// Expressions of Forward.
public abstract record Expr(LocationInfo? Location, string Text);

/// <summary>A local, a Forward parameter, a [Param] field or a [Dim].</summary>
public sealed record NameExpr(string Name, LocationInfo? Location, string Text) : Expr(Location, Text);

public sealed record OpCallExpr(OpInfo Op, EquatableArray<Expr> Args, LocationInfo? Location, string Text) : Expr(Location, Text);

/// <summary><c>Child.Forward(…)</c>, or <c>Layers[i].Forward(…)</c> inside the layer loop (Indexed).</summary>
public sealed record SubCallExpr(string Field, bool Indexed, EquatableArray<Expr> Args, LocationInfo? Location, string Text)
    : Expr(Location, Text);

/// <summary><c>a + b</c>, <c>a * b</c> on tensors, or + - * / on ints.</summary>
public sealed record BinaryExpr(string Operator, Expr Left, Expr Right, LocationInfo? Location, string Text) : Expr(Location, Text);

public sealed record NumberExpr(string Literal, bool IsInteger, LocationInfo? Location, string Text) : Expr(Location, Text);

/// <summary>A scalar function of an elementwise gradient formula (<c>Exp</c>, <c>Erf</c>, <c>Sqrt</c>, <c>Tanh</c>).</summary>
public sealed record FunctionExpr(string Name, EquatableArray<Expr> Args, LocationInfo? Location, string Text) : Expr(Location, Text);

public sealed record NegateExpr(Expr Operand, LocationInfo? Location, string Text) : Expr(Location, Text);
