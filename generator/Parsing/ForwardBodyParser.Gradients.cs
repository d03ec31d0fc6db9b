using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Parsing;

// The gradient table: each op's Grad row ("dx = SoftmaxBackward(y, dy)", "da = dy * b; db = dy * a") read with the
// Forward expression grammar. Names resolve against the op (its operands, y, dy, its scalar arguments) instead of the
// semantic model, calls against the ops declared next to it and in Qwen2VL.Dsl.Ops; a row that does not read is QVL0203
// on the line that uses the op.
internal sealed partial class ForwardBodyParser
{
    private const string RuleHint = "a gradient rule is 'd<operand> = expression' rows separated by ';', over op calls, the operands, y, dy and the scalar arguments";

    /// <summary>The scalar functions an elementwise formula may call (FormulaEmitter lowers them).</summary>
    private static readonly HashSet<string> FormulaFunctions = new() { "Exp", "Erf", "Sqrt", "Tanh" };

    /// <summary>While a gradient rule is read: what its names may be, and the problems found.</summary>
    private sealed class RuleScope(OpInfo op, INamedTypeSymbol? declaringType)
    {
        public OpInfo Op { get; } = op;
        public INamedTypeSymbol? DeclaringType { get; } = declaringType;
        public bool Elementwise => Op.Group == OpGroup.Elementwise;
        public List<string> Errors { get; } = new();
    }

    private RuleScope? _rule;

    /// <summary>The op with its gradient table row parsed; a row that does not parse is reported (QVL0203) at <paramref name="location"/>.</summary>
    private OpInfo WithGradRules(OpInfo op, INamedTypeSymbol? declaringType, LocationInfo? location)
    {
        if (_rule is not null || op.Grad is not { } grad)
            return op; // ops called inside a rule are not differentiated again
        var tensors = op.Parameters.Where(p => p.Kind is "Tensor" or "OptionalTensor").Select(p => p.Name).ToList();
        var rules = new List<GradAssign>();
        string? error = null;
        _rule = new RuleScope(op, declaringType);
        try
        {
            foreach (var row in grad.Split(';').Select(r => r.Trim()).Where(r => r.Length > 0))
            {
                var syntax = SyntaxFactory.ParseExpression(row);
                if (syntax.ContainsDiagnostics || syntax is not AssignmentExpressionSyntax { Left: IdentifierNameSyntax target } assignment
                    || !assignment.IsKind(SyntaxKind.SimpleAssignmentExpression))
                {
                    error = $"'{row}' is not 'd<operand> = expression'";
                    break;
                }
                var name = target.Identifier.Text;
                var operand = name.Length > 1 && name[0] == 'd' ? tensors.IndexOf(name.Substring(1)) : -1;
                if (operand < 0)
                {
                    error = $"'{name}' is not d<operand> for a tensor operand of {op.Name} ({string.Join(", ", tensors)})";
                    break;
                }
                if (rules.Any(r => r.Index == operand))
                {
                    error = $"{name} is given twice";
                    break;
                }
                var value = Expression(assignment.Right);
                if (value is null || _rule.Errors.Count > 0)
                {
                    error = _rule.Errors.FirstOrDefault() ?? $"'{assignment.Right}' does not parse";
                    break;
                }
                rules.Add(new GradAssign(tensors[operand], operand, value, assignment.Right.ToString()));
            }
        }
        finally
        {
            _rule = null;
        }
        if (error is not null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidGradRule, location, op.Name, grad, error));
            return op;
        }
        return op with { GradRules = rules.ToEquatableArray() };
    }

    /// <summary>Whether a name of a rule is one it may read: an operand, a scalar argument, dy, and y outside elementwise formulas.</summary>
    private bool RuleName(string name)
    {
        var rule = _rule!;
        if (name == "dy" || (name == "y" && !rule.Elementwise) || rule.Op.Parameters.Any(p => p.Name == name && p.Kind != "IntArray"))
            return true;
        rule.Errors.Add(rule.Elementwise && name == "y"
            ? "an elementwise rule reads the operands, not y"
            : $"unknown name '{name}' (the operands and scalars of {rule.Op.Name}, y and dy)");
        return false;
    }

    /// <summary>A call in a rule: an op declared next to the differentiated op or in Qwen2VL.Dsl.Ops, or a formula function.</summary>
    private Expr? RuleInvocation(InvocationExpressionSyntax invocation, string text)
    {
        var rule = _rule!;
        if (invocation.Expression is not IdentifierNameSyntax { Identifier.Text: var name })
        {
            rule.Errors.Add($"'{invocation.Expression}' is not an op name");
            return null;
        }
        var args = Arguments(invocation.ArgumentList);
        if (args is null)
            return null;
        if (rule.Elementwise && FormulaFunctions.Contains(name))
            return new FunctionExpr(name, args.Value, null, text);
        var op = OpNamed(rule.DeclaringType, name) ?? ReadOp(name);
        if (op is null)
        {
            rule.Errors.Add(rule.Elementwise
                ? $"'{name}' is neither an op nor a formula function ({string.Join(", ", FormulaFunctions)})"
                : $"'{name}' is not an op (an [Op] method of {rule.Op.Name}'s class or of Qwen2VL.Dsl.Ops)");
            return null;
        }
        var arity = op.Parameters.Count(p => p.Kind != "OptionalTensor");
        if (args.Value.Count < arity || args.Value.Count > op.Parameters.Count)
        {
            rule.Errors.Add($"{name} takes {op.Parameters.Count} arguments ({string.Join(", ", op.Parameters.Select(p => p.Name))}), the rule gives {args.Value.Count}");
            return null;
        }
        return new OpCallExpr(op, args.Value, null, text);
    }

    private static OpInfo? OpNamed(INamedTypeSymbol? type, string name)
    {
        var method = type?.GetMembers(name).OfType<IMethodSymbol>().FirstOrDefault();
        var attribute = method?.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == DslNames.Op);
        return method is null || attribute is null ? null : OpInfoReader.Read(method, attribute);
    }

    /// <summary>Adds a diagnostic, or inside a gradient rule records its message as the rule's problem.</summary>
    private void Report(DiagnosticDescriptor descriptor, LocationInfo? location, params string[] args)
    {
        if (_rule is null)
            diagnostics.Add(DiagnosticInfo.Create(descriptor, location, args));
        else
            _rule.Errors.Add(string.Format(CultureInfo.InvariantCulture, descriptor.MessageFormat.ToString(CultureInfo.InvariantCulture), args));
    }
}
