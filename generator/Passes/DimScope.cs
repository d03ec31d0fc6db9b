using System.Collections.Generic;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// The dims visible in one module: config dims and input dims are symbols; derived dims are replaced by their
/// definitions so that equal sizes have equal canonical forms. Also turns dim expressions into symbolic sizes.
/// </summary>
internal sealed class DimScope
{
    private readonly Dictionary<string, SymExpr> _known = new();
    private readonly Dictionary<SymExpr, string> _derivedNames = new();

    public IReadOnlyDictionary<string, SymExpr> Known => _known;

    public bool IsDeclared(string name) => _known.ContainsKey(name);

    public void AddSymbol(string name) => _known[name] = SymExpr.Symbol(name);

    public void AddDerived(string name, SymExpr definition)
    {
        _known[name] = definition;
        if (!_derivedNames.ContainsKey(definition))
            _derivedNames[definition] = name;
    }

    /// <summary>Readable dim: a derived dim's own name when the size equals its definition.</summary>
    public string Display(SymExpr dim) => _derivedNames.TryGetValue(dim, out var name) ? name : dim.ToString();

    public string Display(EquatableArray<SymExpr> shape)
    {
        var parts = new List<string>();
        foreach (var d in shape)
            parts.Add(Display(d));
        return "[" + string.Join(", ", parts) + "]";
    }

    /// <summary>Parses "3*Embed", "Embed / Heads", "16". Unknown names are reported through <paramref name="error"/>.</summary>
    public SymExpr? Parse(string text, out string? error, out string? unknown)
    {
        error = null;
        unknown = null;
        var syntax = SyntaxFactory.ParseExpression(text);
        if (syntax.ContainsDiagnostics)
        {
            error = "it does not parse as an expression";
            return null;
        }
        return Convert(syntax, ref error, ref unknown);
    }

    private SymExpr? Convert(ExpressionSyntax syntax, ref string? error, ref string? unknown)
    {
        switch (syntax)
        {
            case ParenthesizedExpressionSyntax p:
                return Convert(p.Expression, ref error, ref unknown);
            case LiteralExpressionSyntax literal when literal.Token.Value is int value:
                return SymExpr.Const(value);
            case IdentifierNameSyntax name:
                if (_known.TryGetValue(name.Identifier.Text, out var known))
                    return known;
                unknown = name.Identifier.Text;
                return null;
            case BinaryExpressionSyntax binary:
                var left = Convert(binary.Left, ref error, ref unknown);
                var right = Convert(binary.Right, ref error, ref unknown);
                if (left is null || right is null)
                    return null;
                switch (binary.OperatorToken.Text)
                {
                    case "+": return left + right;
                    case "-": return left - right;
                    case "*": return left * right;
                    case "/":
                        var quotient = left.DivideBy(right);
                        if (quotient is null)
                            error = $"cannot divide by '{binary.Right}' (only by a product of dims and numbers)";
                        return quotient;
                }
                break;
        }
        error = $"'{syntax}' is not a dim, an integer, or + - * / of them";
        return null;
    }
}
