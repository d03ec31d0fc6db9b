using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// The shard plan of one module, checked where the generator can know the numbers: each sharded [Param] must have
/// the axis its kind splits (QVL0402 otherwise), its <c>ShardGroups</c> must name known dims (QVL0402), and every
/// degree of <c>[Module(TensorParallel = …)]</c> must divide the groups the split respects (QVL0401, on the param's
/// line) whenever their size follows from literals and config defaults. Dims bound only at load time (no
/// <c>Default</c>) are left to the runner's <c>CheckTensorParallel</c>, which names the dim and the degree.
/// </summary>
internal static class ShardPlanCheck
{
    public static IEnumerable<DiagnosticInfo> Check(string module, LocationInfo? moduleLocation, IReadOnlyList<DimDecl> dims,
        IReadOnlyList<ParamDecl> parameters, IReadOnlyList<int> degrees)
    {
        foreach (var degree in degrees.Where(d => d < 1).Distinct())
            yield return DiagnosticInfo.Create(DiagnosticDescriptors.InvalidShardPlan, moduleLocation, module,
                $"TensorParallel holds {degree}; a tensor-parallel degree is 1 or more");
        var values = new DimValues(dims);
        foreach (var p in parameters.Where(p => p.Shard != ShardKind.Replicated))
        {
            if (p.Shard is < ShardKind.Column or > ShardKind.Vocab)
            {
                yield return DiagnosticInfo.Create(DiagnosticDescriptors.InvalidShardPlan, p.Location, p.Field,
                    $"Shard = {p.Shard} is not one of Replicated, Column, Row, Vocab");
                continue;
            }
            int axis = ShardKind.Axis(p.Shard);
            if (axis >= p.Shape.Count)
            {
                yield return DiagnosticInfo.Create(DiagnosticDescriptors.InvalidShardPlan, p.Location, p.Field,
                    $"{ShardKind.Name(p.Shard)} splits axis {axis}, but the param has rank {p.Shape.Count}" +
                    (p.Shard == ShardKind.Row ? " (a row-parallel layer's bias is added after the all-reduce: leave it Replicated)" : ""));
                continue;
            }
            var groups = p.ShardGroups ?? p.Shape[axis];
            var value = values.Evaluate(groups, out var unknown, out var invalid);
            if (p.ShardGroups is not null && (invalid || unknown.Count > 0 && unknown.Any(u => !values.IsDeclared(u))))
            {
                yield return DiagnosticInfo.Create(DiagnosticDescriptors.InvalidShardPlan, p.Location, p.Field,
                    invalid ? $"ShardGroups \"{groups}\" is not a dim expression"
                            : $"ShardGroups \"{groups}\" names '{unknown.First(u => !values.IsDeclared(u))}', which is not a dim of the module");
                continue;
            }
            if (value is not { } size)
                continue; // bound at load time: the runner checks it
            foreach (var degree in degrees.Where(d => d >= 1).Distinct().OrderBy(d => d))
                if (size % degree != 0)
                    yield return DiagnosticInfo.Create(DiagnosticDescriptors.ShardDegreeDoesNotDivide, p.Location, p.Field,
                        ShardKind.Name(p.Shard), degree.ToString(), groups, size.ToString());
        }
    }

    /// <summary>Dim values the generator knows: literals, config dims with a Default, and derived dims over those.</summary>
    private sealed class DimValues(IReadOnlyList<DimDecl> dims)
    {
        private readonly Dictionary<string, DimDecl> _byName = dims.GroupBy(d => d.Name).ToDictionary(g => g.Key, g => g.First());
        private readonly HashSet<string> _evaluating = new();

        public bool IsDeclared(string name) => _byName.ContainsKey(name);

        /// <summary>The value of <paramref name="text"/>, or null when some dim in it is bound only at load time (listed in <paramref name="unknown"/>).</summary>
        public long? Evaluate(string text, out List<string> unknown, out bool invalid)
        {
            unknown = new List<string>();
            invalid = false;
            var syntax = SyntaxFactory.ParseExpression(text);
            if (syntax.ContainsDiagnostics)
            {
                invalid = true;
                return null;
            }
            return Eval(syntax, unknown, ref invalid);
        }

        private long? Eval(ExpressionSyntax syntax, List<string> unknown, ref bool invalid)
        {
            switch (syntax)
            {
                case ParenthesizedExpressionSyntax p:
                    return Eval(p.Expression, unknown, ref invalid);
                case LiteralExpressionSyntax { Token.Value: int literal }:
                    return literal;
                case IdentifierNameSyntax name:
                    return Dim(name.Identifier.Text, unknown, ref invalid);
                case BinaryExpressionSyntax binary:
                    var left = Eval(binary.Left, unknown, ref invalid);
                    var right = Eval(binary.Right, unknown, ref invalid);
                    if (left is not { } l || right is not { } r)
                        return null;
                    switch (binary.OperatorToken.Text)
                    {
                        case "+": return l + r;
                        case "-": return l - r;
                        case "*": return l * r;
                        case "/": return r == 0 ? null : l / r; // int division, as the runner binds derived dims
                    }
                    invalid = true;
                    return null;
                default:
                    invalid = true;
                    return null;
            }
        }

        private long? Dim(string name, List<string> unknown, ref bool invalid)
        {
            if (!_byName.TryGetValue(name, out var dim) || !_evaluating.Add(name))
            {
                unknown.Add(name);
                return null;
            }
            try
            {
                if (dim.Expression is { } expression)
                {
                    var inner = new List<string>();
                    var value = Evaluate(expression, out inner, out var bad);
                    unknown.AddRange(inner);
                    return bad ? null : value;
                }
                if (dim.Default is { } d)
                    return d;
                unknown.Add(name);
                return null;
            }
            finally
            {
                _evaluating.Remove(name);
            }
        }
    }
}
