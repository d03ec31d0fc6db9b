using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace Qwen2VL.Generator.Diagnostics;

/// <summary>
/// Every diagnostic the generator reports, with a stable id. QVL00xx: the DSL subset and declarations;
/// QVL01xx: shapes and dtypes; QVL02xx: op declarations; QVL03xx: training; QVL04xx: the shard plan; QVL09xx: internal.
/// </summary>
public static class DiagnosticDescriptors
{
    private const string Category = "Qwen2VL.Dsl";

    public static readonly DiagnosticDescriptor UnsupportedStatement = Error(
        "QVL0001", "Statement outside the DSL subset",
        "'{0}' is not allowed in a module's Forward: use 'var x = …;', 'x = …;', 'return …;' or 'for (int i = 0; i < Layers.Length; i++) x = Layers[i].Forward(…);'");

    public static readonly DiagnosticDescriptor UnsupportedExpression = Error(
        "QVL0002", "Expression outside the DSL subset",
        "'{0}' is not allowed in a module's Forward: {1}");

    public static readonly DiagnosticDescriptor InvalidForward = Error(
        "QVL0003", "Invalid Forward method",
        "Module '{0}': {1}");

    public static readonly DiagnosticDescriptor UnknownDim = Error(
        "QVL0004", "Unknown dim",
        "'{0}' is not a dim of module '{1}' (declare it with [Dim] or bind it from a [Shape] of Forward)");

    public static readonly DiagnosticDescriptor InvalidDimExpression = Error(
        "QVL0005", "Invalid dim expression",
        "'{0}' is not a valid dim expression: {1}");

    public static readonly DiagnosticDescriptor ModuleNotPartial = Error(
        "QVL0006", "Module must be partial",
        "Module '{0}' must be declared 'partial' so the generator can add its Runner");

    public static readonly DiagnosticDescriptor UnknownName = Error(
        "QVL0007", "Unknown name",
        "'{0}' is not a local, a Forward parameter, a [Param], a [Dim] or a [Const] of module '{1}'");

    public static readonly DiagnosticDescriptor InvalidMember = Error(
        "QVL0008", "Invalid module member",
        "'{0}': {1}");

    public static readonly DiagnosticDescriptor NestedModule = Error(
        "QVL0009", "Module must be a top-level class",
        "Module '{0}' is nested in '{1}': declare [Module] classes directly in a namespace");

    public static readonly DiagnosticDescriptor ConstNotFloat = Error(
        "QVL0010", "Const must be a float",
        "'{0}': a [Const] must be a float field or settable property, not '{1}'");

    public static readonly DiagnosticDescriptor ConstWithoutKey = Error(
        "QVL0011", "Const needs a config key",
        "'{0}': a [Const] needs a non-empty config key ([Const(\"rope_theta\", Default = 1e6)])");

    public static readonly DiagnosticDescriptor InvalidRecomputePolicy = Error(
        "QVL0301", "Invalid recompute policy",
        "Module '{0}' has Recompute = {1}, which is not a combination of RecomputeOps flags (Norms, Activations, Softmax, Rotary)");

    public static readonly DiagnosticDescriptor ShardDegreeDoesNotDivide = Error(
        "QVL0401", "Shard degree does not divide a dim",
        "'{0}' ({1}-parallel): tensor-parallel degree {2} does not divide {3} = {4}; drop the degree from [Module(TensorParallel = …)], or shard the param another way");

    public static readonly DiagnosticDescriptor InvalidShardPlan = Error(
        "QVL0402", "Invalid shard plan",
        "'{0}': {1}");

    public static readonly DiagnosticDescriptor ShardingUnplaced = Error(
        "QVL0403", "The sharding pass cannot place a split",
        "{0}: the tensor-parallel split cannot pass {1}: {2}");

    public static readonly DiagnosticDescriptor ShapeMismatch = Error(
        "QVL0101", "Shape mismatch",
        "{0}: {1}");

    public static readonly DiagnosticDescriptor RankMismatch = Error(
        "QVL0102", "Rank mismatch",
        "{0}: argument '{1}' has shape {2} but the op expects {3}");

    public static readonly DiagnosticDescriptor DTypeMismatch = Error(
        "QVL0103", "DType mismatch",
        "{0}: argument '{1}' is {2} but the op expects {3}");

    public static readonly DiagnosticDescriptor ReshapeMismatch = Error(
        "QVL0104", "Invalid reshape",
        "{0}: cannot view {1} as {2}: {3}");

    public static readonly DiagnosticDescriptor AxisOutOfRange = Error(
        "QVL0105", "Axis out of range",
        "{0}: axis {1} is out of range for shape {2}");

    public static readonly DiagnosticDescriptor SubmoduleCallMismatch = Error(
        "QVL0106", "Submodule call mismatch",
        "Call of '{0}.Forward': {1}");

    public static readonly DiagnosticDescriptor LoopCarriedShape = Error(
        "QVL0107", "Loop changes the carried shape",
        "The layer loop over '{0}' turns {1} into {2}; the carried tensor must keep its shape");

    public static readonly DiagnosticDescriptor InvalidOpDeclaration = Error(
        "QVL0201", "Invalid op declaration",
        "Op '{0}' has an invalid shape rule '{1}': {2}");

    public static readonly DiagnosticDescriptor NotAnOp = Error(
        "QVL0202", "Call of a method that is not an op",
        "'{0}' is not a DSL op (an Ops method with [Op]) nor a submodule Forward");

    public static readonly DiagnosticDescriptor InvalidGradRule = Error(
        "QVL0203", "Invalid gradient rule",
        "Op '{0}' has an invalid gradient rule '{1}': {2}");

    public static readonly DiagnosticDescriptor InternalError = Error(
        "QVL0901", "Generator internal error",
        "The generator failed on module '{0}': {1}. Please report this with the module source.");

    private static readonly Dictionary<string, DiagnosticDescriptor> All = typeof(DiagnosticDescriptors)
        .GetFields()
        .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
        .Select(f => (DiagnosticDescriptor)f.GetValue(null)!)
        .ToDictionary(d => d.Id);

    public static DiagnosticDescriptor ById(string id) => All[id];

    private static DiagnosticDescriptor Error(string id, string title, string message) =>
        new(id, title, message, Category, DiagnosticSeverity.Error, isEnabledByDefault: true);
}
