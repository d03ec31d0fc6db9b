using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Parsing;

/// <summary>
/// Interprets the body of Forward: the restricted C# subset of locals, assignments, returns, the layer loop,
/// op calls, submodule calls, tensor + and *, and integer size arithmetic. The same expression grammar reads the
/// gradient table (each op's <c>Grad</c> row, ForwardBodyParser.Gradients.cs).
/// </summary>
internal sealed partial class ForwardBodyParser(
    SemanticModel model, INamedTypeSymbol module, List<DiagnosticInfo> diagnostics, CancellationToken ct)
{
    private const string SubsetHint = "only op calls, submodule Forward calls, tensor + and *, names, and number literals are allowed";

    public List<Stmt> ParseBlock(BlockSyntax block)
    {
        var statements = new List<Stmt>();
        foreach (var statement in block.Statements)
        {
            ct.ThrowIfCancellationRequested();
            var parsed = ParseStatement(statement);
            if (parsed is not null)
                statements.Add(parsed);
        }
        return statements;
    }

    private Stmt? ParseStatement(StatementSyntax statement)
    {
        var location = LocationInfo.From(statement);
        var text = statement.ToString();
        switch (statement)
        {
            case LocalDeclarationStatementSyntax local when local.Declaration.Variables.Count == 1
                && local.Declaration.Variables[0].Initializer is { } init:
                return Expression(init.Value) is { } value
                    ? new LetStmt(local.Declaration.Variables[0].Identifier.Text, value, location, text)
                    : null;
            case ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax assignment }
                when assignment.IsKind(SyntaxKind.SimpleAssignmentExpression) && assignment.Left is IdentifierNameSyntax target:
                return Expression(assignment.Right) is { } assigned
                    ? new AssignStmt(target.Identifier.Text, assigned, location, text)
                    : null;
            case ReturnStatementSyntax { Expression: { } returned }:
                return Expression(returned) is { } result ? new ReturnStmt(result, location, text) : null;
            case ForStatementSyntax loop when ParseLoop(loop) is { } parsedLoop:
                return parsedLoop;
        }
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedStatement, location, FirstLine(text)));
        return null;
    }

    /// <summary>Matches <c>for (int i = 0; i &lt; Layers.Length; i++) x = Layers[i].Forward(…);</c> exactly.</summary>
    private Stmt? ParseLoop(ForStatementSyntax loop)
    {
        if (loop.Declaration is not { Variables.Count: 1 } declaration
            || declaration.Variables[0].Initializer?.Value is not LiteralExpressionSyntax { Token.ValueText: "0" }
            || loop.Incrementors.Count != 1)
            return null;
        var index = declaration.Variables[0].Identifier.Text;
        if (loop.Condition is not BinaryExpressionSyntax { RawKind: (int)SyntaxKind.LessThanExpression } condition
            || condition.Left is not IdentifierNameSyntax { Identifier.Text: var conditionIndex } || conditionIndex != index
            || condition.Right is not MemberAccessExpressionSyntax { Name.Identifier.Text: "Length", Expression: IdentifierNameSyntax array })
            return null;
        var body = loop.Statement is BlockSyntax { Statements.Count: 1 } block ? block.Statements[0] : loop.Statement;
        if (body is not ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax { Left: IdentifierNameSyntax target } assignment }
            || assignment.Right is not InvocationExpressionSyntax
            {
                Expression: MemberAccessExpressionSyntax
                {
                    Name.Identifier.Text: "Forward",
                    Expression: ElementAccessExpressionSyntax
                    {
                        Expression: IdentifierNameSyntax indexed,
                        ArgumentList.Arguments: { Count: 1 } indexArguments
                    }
                }
            } invocation
            || indexed.Identifier.Text != array.Identifier.Text
            || indexArguments[0].Expression is not IdentifierNameSyntax { Identifier.Text: var used } || used != index)
            return null;
        var args = Arguments(invocation.ArgumentList);
        if (args is null)
            return null;
        var call = new SubCallExpr(array.Identifier.Text, true, args.Value, LocationInfo.From(invocation), invocation.ToString());
        return new LoopStmt(target.Identifier.Text, call, LocationInfo.From(loop), loop.ToString());
    }

    private Expr? Expression(ExpressionSyntax syntax)
    {
        var location = _rule is null ? LocationInfo.From(syntax) : null;
        var text = syntax.ToString();
        switch (syntax)
        {
            case ParenthesizedExpressionSyntax parens:
                return Expression(parens.Expression);
            case IdentifierNameSyntax name:
                return _rule is null || RuleName(name.Identifier.Text) ? new NameExpr(name.Identifier.Text, location, text) : null;
            case MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: IdentifierNameSyntax member } when _rule is null:
                return new NameExpr(member.Identifier.Text, location, text);
            case LiteralExpressionSyntax literal when literal.IsKind(SyntaxKind.NumericLiteralExpression):
                return new NumberExpr(literal.Token.Text, literal.Token.Value is int or long, location, text);
            case PrefixUnaryExpressionSyntax unary when unary.IsKind(SyntaxKind.UnaryMinusExpression):
                if (unary.Operand is LiteralExpressionSyntax negated && negated.IsKind(SyntaxKind.NumericLiteralExpression))
                    return new NumberExpr("-" + negated.Token.Text, negated.Token.Value is int or long, location, text);
                return Expression(unary.Operand) is { } operand ? new NegateExpr(operand, location, text) : null;
            case BinaryExpressionSyntax binary when binary.OperatorToken.Text is "+" or "-" or "*" or "/":
                var left = Expression(binary.Left);
                var right = Expression(binary.Right);
                if (left is null || right is null)
                    return null;
                // Tensor operators are the ops Add and Mul; integer arithmetic stays a size expression. In a gradient rule
                // an elementwise op's formula is per element (its arithmetic stays arithmetic); other rules combine tensors.
                if (_rule is not null ? !_rule.Elementwise && binary.OperatorToken.Text is "+" or "*"
                    : model.GetSymbolInfo(binary, ct).Symbol is IMethodSymbol { MethodKind: MethodKind.UserDefinedOperator } op
                      && op.ContainingType.ToDisplayString() == DslNames.Tensor)
                {
                    var opName = binary.OperatorToken.Text == "+" ? "Add" : binary.OperatorToken.Text == "*" ? "Mul" : null;
                    var info = opName is null ? null : ReadOp(opName);
                    if (info is not null)
                        info = WithGradRules(info, null, location);
                    if (info is null)
                    {
                        Report(DiagnosticDescriptors.NotAnOp, location, "operator " + binary.OperatorToken.Text);
                        return null;
                    }
                    return new OpCallExpr(info, new[] { left, right }.ToEquatableArray(), location, text);
                }
                return new BinaryExpr(binary.OperatorToken.Text, left, right, location, text);
            case InvocationExpressionSyntax invocation:
                return _rule is null ? Invocation(invocation, location, text) : RuleInvocation(invocation, text);
        }
        Report(DiagnosticDescriptors.UnsupportedExpression, location, FirstLine(text), _rule is null ? SubsetHint : RuleHint);
        return null;
    }

    private Expr? Invocation(InvocationExpressionSyntax invocation, LocationInfo? location, string text)
    {
        // Child.Forward(...)
        if (invocation.Expression is MemberAccessExpressionSyntax { Name.Identifier.Text: "Forward", Expression: IdentifierNameSyntax child }
            && IsSubmodule(child.Identifier.Text))
        {
            var args = Arguments(invocation.ArgumentList);
            return args is null ? null : new SubCallExpr(child.Identifier.Text, false, args.Value, location, text);
        }

        if (model.GetSymbolInfo(invocation, ct).Symbol is not IMethodSymbol method
            || method.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == DslNames.Op) is not { } opAttribute)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotAnOp, location, FirstLine(invocation.Expression.ToString())));
            return null;
        }
        var op = WithGradRules(OpInfoReader.Read(method, opAttribute), method.ContainingType, location);
        var arguments = new List<Expr>();
        foreach (var argument in invocation.ArgumentList.Arguments)
        {
            if (argument.NameColon is not null && arguments.Count < op.Parameters.Count
                && op.Parameters[arguments.Count].Name != argument.NameColon.Name.Identifier.Text)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedExpression, LocationInfo.From(argument),
                    argument.ToString(), "named arguments must keep the parameter order"));
                return null;
            }
            var value = Expression(argument.Expression);
            if (value is null)
                return null;
            arguments.Add(value);
        }
        return new OpCallExpr(op, arguments.ToEquatableArray(), location, text);
    }

    /// <summary>ParallelCopy and AllReduce of <c>Qwen2VL.Dsl.Ops</c> with their gradient rows (what the sharding pass inserts).</summary>
    public EquatableArray<OpInfo> CollectiveOps(LocationInfo? location)
    {
        var ops = model.Compilation.GetTypeByMetadataName(DslNames.Ops);
        var list = new List<OpInfo>();
        foreach (var name in new[] { "ParallelCopy", "AllReduce" })
            if (ReadOp(name) is { } op)
                list.Add(WithGradRules(op, ops, location));
        return list.ToEquatableArray();
    }

    private OpInfo? ReadOp(string name)
    {
        var ops = model.Compilation.GetTypeByMetadataName(DslNames.Ops);
        var method = ops?.GetMembers(name).OfType<IMethodSymbol>().FirstOrDefault();
        var attribute = method?.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == DslNames.Op);
        return method is null || attribute is null ? null : OpInfoReader.Read(method, attribute);
    }

    private EquatableArray<Expr>? Arguments(ArgumentListSyntax list)
    {
        var args = new List<Expr>();
        foreach (var argument in list.Arguments)
        {
            var value = Expression(argument.Expression);
            if (value is null)
                return null;
            args.Add(value);
        }
        return args.ToEquatableArray();
    }

    private bool IsSubmodule(string name) =>
        module.GetMembers(name).Any(m => m.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == DslNames.Submodule));

    private static string FirstLine(string text)
    {
        var newline = text.IndexOf('\n');
        return (newline < 0 ? text : text.Substring(0, newline)).Trim();
    }
}
