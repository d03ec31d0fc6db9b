using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Qwen2VL.Generator.Emit;

/// <summary>How a scalar formula is lowered.</summary>
internal enum FormulaTarget
{
    /// <summary>ILGPU kernel code: XMath and KernelMath functions.</summary>
    Gpu,
    /// <summary>Scalar CPU code: MathF.</summary>
    CpuScalar,
    /// <summary>System.Numerics.Vector&lt;float&gt; code: constants become splats.</summary>
    CpuVector,
}

/// <summary>
/// Lowers an op's <c>Scalar</c> formula (from its [Op] declaration, e.g. <c>x / (1f + Exp(-1.702f * x))</c>)
/// to C# for one target, substituting operand expressions for the parameter names.
/// </summary>
internal static class FormulaEmitter
{
    private static readonly Dictionary<string, (string Gpu, string Cpu, string? Vector)> Functions = new()
    {
        ["Exp"] = ("XMath.Exp", "MathF.Exp", "Vector.Exp"),
        ["Sqrt"] = ("XMath.Sqrt", "MathF.Sqrt", "Vector.SquareRoot"),
        ["Erf"] = ("KernelMath.Erf", "KernelMath.Erf", null),
        ["Tanh"] = ("XMath.Tanh", "MathF.Tanh", null),
    };

    /// <summary>True when every function of the formula has a Vector&lt;float&gt; form.</summary>
    public static bool IsVectorizable(string formula) =>
        SyntaxFactory.ParseExpression(formula).DescendantNodesAndSelf().OfType<InvocationExpressionSyntax>()
            .All(i => i.Expression is IdentifierNameSyntax name && Functions.TryGetValue(name.Identifier.Text, out var f) && f.Vector is not null);

    public static string Lower(string formula, IReadOnlyDictionary<string, string> operands, FormulaTarget target)
    {
        var syntax = SyntaxFactory.ParseExpression(formula);
        return Lower(syntax, operands, target);
    }

    private static string Lower(ExpressionSyntax syntax, IReadOnlyDictionary<string, string> operands, FormulaTarget target)
    {
        switch (syntax)
        {
            case ParenthesizedExpressionSyntax p:
                return "(" + Lower(p.Expression, operands, target) + ")";
            case IdentifierNameSyntax name:
                if (operands.TryGetValue(name.Identifier.Text, out var operand))
                    return operand;
                throw new InvalidOperationException($"unknown name '{name.Identifier.Text}' in formula");
            case LiteralExpressionSyntax literal:
                return target == FormulaTarget.CpuVector ? $"new Vector<float>({literal.Token.Text})" : literal.Token.Text;
            case PrefixUnaryExpressionSyntax unary:
                return unary.OperatorToken.Text + Lower(unary.Operand, operands, target);
            case BinaryExpressionSyntax binary:
                return Lower(binary.Left, operands, target) + " " + binary.OperatorToken.Text + " " + Lower(binary.Right, operands, target);
            case InvocationExpressionSyntax { Expression: IdentifierNameSyntax function } call
                when Functions.TryGetValue(function.Identifier.Text, out var forms):
                var lowered = target switch
                {
                    FormulaTarget.Gpu => forms.Gpu,
                    FormulaTarget.CpuScalar => forms.Cpu,
                    _ => forms.Vector ?? throw new InvalidOperationException($"{function.Identifier.Text} has no vector form"),
                };
                return lowered + "(" + string.Join(", ", call.ArgumentList.Arguments.Select(a => Lower(a.Expression, operands, target))) + ")";
        }
        throw new InvalidOperationException($"'{syntax}' is not supported in an op formula");
    }
}
