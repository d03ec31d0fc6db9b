using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;
using Qwen2VL.Generator.Passes;

namespace Qwen2VL.Generator.Parsing;

/// <summary>
/// Reads a [Module] class into a <see cref="ModuleModel"/>: its dims, params, submodules and the Forward body,
/// interpreted with the semantic model. Anything outside the DSL subset becomes a diagnostic.
/// </summary>
internal static class ModuleParser
{
    public static ModuleModel Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        var type = (INamedTypeSymbol)context.TargetSymbol;
        var diagnostics = new List<DiagnosticInfo>();
        var isPartial = type.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax(cancellationToken))
            .OfType<ClassDeclarationSyntax>()
            .Any(c => c.Modifiers.Any(SyntaxKind.PartialKeyword));
        var location = LocationInfo.From(context.TargetNode is ClassDeclarationSyntax cls ? cls.Identifier.GetLocation() : null);
        if (!isPartial)
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModuleNotPartial, location, type.Name));
        if (type.ContainingType is { } outer)
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NestedModule, location, type.Name, outer.Name));

        var dims = new List<DimDecl>();
        var consts = new List<ConstDecl>();
        var parameters = new List<ParamDecl>();
        var submodules = new List<SubmoduleDecl>();
        foreach (var member in type.GetMembers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (member is not (IFieldSymbol or IPropertySymbol))
                continue;
            foreach (var attribute in member.GetAttributes())
            {
                var name = attribute.AttributeClass?.ToDisplayString();
                if (name == DslNames.Dim)
                    ParseDim(member, attribute, dims, diagnostics, cancellationToken);
                else if (name == DslNames.Const)
                    ParseConst(member, attribute, consts, diagnostics);
                else if (name == DslNames.Param)
                    ParseParam(member, attribute, parameters, diagnostics);
                else if (name == DslNames.Submodule)
                    ParseSubmodule(member, attribute, submodules, diagnostics);
            }
        }

        var recompute = ParseRecompute(context, type.Name, diagnostics);
        var tensorParallel = ParseTensorParallel(context);
        diagnostics.AddRange(ShardPlanCheck.Check(type.Name, location, dims, parameters, tensorParallel));
        var forward = ParseForward(type, context.SemanticModel, diagnostics, cancellationToken);
        var ns = type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString();
        // The collectives the sharding pass will insert, read with their gradient rows like any op the body calls.
        var shardOps = parameters.Any(p => p.Shard is ShardKind.Column or ShardKind.Row)
            ? new ForwardBodyParser(context.SemanticModel, type, diagnostics, cancellationToken).CollectiveOps(location)
            : EquatableArray<OpInfo>.Empty;
        return new ModuleModel(
            ns, type.Name, type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat), isPartial, location,
            dims.ToEquatableArray(), consts.ToEquatableArray(), parameters.ToEquatableArray(), submodules.ToEquatableArray(), forward,
            diagnostics.ToEquatableArray(), recompute, tensorParallel.ToEquatableArray()) { ShardOps = shardOps };
    }

    /// <summary><c>[Module(TensorParallel = new[] { 2, 4 })]</c>: the degrees the shard plan is checked against (none by default).</summary>
    private static List<int> ParseTensorParallel(GeneratorAttributeSyntaxContext context)
    {
        var degrees = new List<int>();
        foreach (var attribute in context.Attributes)
            foreach (var named in attribute.NamedArguments)
                if (named.Key == "TensorParallel" && named.Value.Kind == TypedConstantKind.Array)
                    degrees.AddRange(named.Value.Values.Select(v => v.Value is int d ? d : 0));
        return degrees;
    }

    /// <summary>
    /// <c>[Module(Recompute = …)]</c>: the recompute policy (default: cheap ops). A value with bits outside the
    /// declared <c>RecomputeOps</c> flags (a cast integer) is QVL0301.
    /// </summary>
    private static int ParseRecompute(GeneratorAttributeSyntaxContext context, string typeName, List<DiagnosticInfo> diagnostics)
    {
        foreach (var attribute in context.Attributes)
            foreach (var named in attribute.NamedArguments)
            {
                if (named.Key != "Recompute" || named.Value.Value is not int value)
                    continue;
                if ((value & ~RecomputePolicy.CheapOps) == 0)
                    return value;
                var location = LocationInfo.From(attribute.ApplicationSyntaxReference?.GetSyntax().GetLocation());
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidRecomputePolicy, location, typeName, value.ToString()));
            }
        return RecomputePolicy.CheapOps;
    }

    private static void ParseDim(
        ISymbol member, AttributeData attribute, List<DimDecl> dims, List<DiagnosticInfo> diagnostics, CancellationToken ct)
    {
        var location = LocationInfo.From(member.Locations.FirstOrDefault());
        var type = member is IFieldSymbol f ? f.Type : ((IPropertySymbol)member).Type;
        if (type.SpecialType != SpecialType.System_Int32)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidMember, location, member.Name, "a [Dim] must be an int"));
            return;
        }
        var configKey = attribute.ConstructorArguments.Length > 0 ? attribute.ConstructorArguments[0].Value as string : null;
        int? defaultValue = null;
        foreach (var named in attribute.NamedArguments)
            if (named.Key == "Default" && named.Value.Value is int d && d != int.MinValue)
                defaultValue = d;

        string? expression = null;
        if (member is IPropertySymbol)
        {
            var syntax = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(ct) as PropertyDeclarationSyntax;
            expression = syntax?.ExpressionBody?.Expression.ToString();
        }
        if (configKey is null && expression is null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidMember, location, member.Name,
                "a [Dim] needs a config key ([Dim(\"vision_config.embed_dim\")]) or an expression body (=> Embed / Heads)"));
            return;
        }
        dims.Add(new DimDecl(member.Name, configKey, defaultValue, configKey is null ? expression : null, location));
    }

    private static void ParseConst(ISymbol member, AttributeData attribute, List<ConstDecl> consts, List<DiagnosticInfo> diagnostics)
    {
        var location = LocationInfo.From(member.Locations.FirstOrDefault());
        var type = member is IFieldSymbol f ? f.Type : ((IPropertySymbol)member).Type;
        var settable = member is IFieldSymbol { IsConst: false, IsReadOnly: false } || member is IPropertySymbol { SetMethod: not null };
        if (type.SpecialType != SpecialType.System_Single || !settable)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ConstNotFloat, location, member.Name,
                settable ? type.ToDisplayString() : "read-only " + type.ToDisplayString()));
            return;
        }
        var configKey = attribute.ConstructorArguments.Length > 0 ? attribute.ConstructorArguments[0].Value as string : null;
        if (string.IsNullOrWhiteSpace(configKey))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ConstWithoutKey, location, member.Name));
            return;
        }
        double? defaultValue = null;
        foreach (var named in attribute.NamedArguments)
            if (named.Key == "Default" && named.Value.Value is double d && !double.IsNaN(d))
                defaultValue = d;
        consts.Add(new ConstDecl(member.Name, configKey!, defaultValue, location));
    }

    private static void ParseParam(ISymbol member, AttributeData attribute, List<ParamDecl> parameters, List<DiagnosticInfo> diagnostics)
    {
        var location = LocationInfo.From(member.Locations.FirstOrDefault());
        var type = member is IFieldSymbol f ? f.Type : ((IPropertySymbol)member).Type;
        if (type.ToDisplayString().TrimEnd('?') != DslNames.Tensor)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidMember, location, member.Name, "a [Param] must be a Tensor"));
            return;
        }
        var args = attribute.ConstructorArguments;
        var checkpointName = args.Length > 0 ? args[0].Value as string ?? "" : "";
        var shape = args.Length > 1 && args[1].Kind == TypedConstantKind.Array
            ? args[1].Values.Select(v => v.Value as string ?? "").ToEquatableArray()
            : EquatableArray<string>.Empty;
        int shard = ShardKind.Replicated;
        string? groups = null;
        foreach (var named in attribute.NamedArguments)
        {
            if (named.Key == "Shard" && named.Value.Value is int kind)
                shard = kind;
            else if (named.Key == "ShardGroups")
                groups = named.Value.Value as string;
        }
        parameters.Add(new ParamDecl(member.Name, checkpointName, shape, location, shard, groups));
    }

    private static void ParseSubmodule(ISymbol member, AttributeData attribute, List<SubmoduleDecl> submodules, List<DiagnosticInfo> diagnostics)
    {
        var location = LocationInfo.From(member.Locations.FirstOrDefault());
        var type = member is IFieldSymbol f ? f.Type : ((IPropertySymbol)member).Type;
        var isArray = type is IArrayTypeSymbol;
        var element = type is IArrayTypeSymbol array ? array.ElementType : type;
        if (!element.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == DslNames.Module))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidMember, location, member.Name,
                $"a [Submodule] must be a [Module] class (or an array of one), not '{type.ToDisplayString()}'"));
            return;
        }
        var prefix = attribute.ConstructorArguments.Length > 0 ? attribute.ConstructorArguments[0].Value as string ?? "" : "";
        string? count = null;
        foreach (var named in attribute.NamedArguments)
            if (named.Key == "Count")
                count = named.Value.Value as string;
        if (isArray && count is null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidMember, location, member.Name,
                "an array of submodules needs Count = \"<dim>\" giving the number of layers"));
            return;
        }
        submodules.Add(new SubmoduleDecl(member.Name, element.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat),
            element.Name, prefix, isArray, count, location));
    }

    private static ForwardDecl? ParseForward(
        INamedTypeSymbol type, SemanticModel semanticModel, List<DiagnosticInfo> diagnostics, CancellationToken ct)
    {
        var methods = type.GetMembers("Forward").OfType<IMethodSymbol>().ToList();
        var typeLocation = LocationInfo.From(type.Locations.FirstOrDefault());
        if (methods.Count != 1)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidForward, typeLocation, type.Name,
                methods.Count == 0 ? "it has no Forward method" : "it has more than one Forward method"));
            return null;
        }
        var method = methods[0];
        var syntax = method.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(ct) as MethodDeclarationSyntax;
        var methodLocation = LocationInfo.From(syntax?.Identifier.GetLocation());
        if (syntax?.Body is null || method.ReturnType.ToDisplayString() != DslNames.Tensor)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidForward, methodLocation, type.Name,
                "Forward must return Tensor and have a block body"));
            return null;
        }
        // The syntax tree of Forward may differ from the one the context's semantic model was made for (partial classes).
        var model = semanticModel.SyntaxTree == syntax.SyntaxTree ? semanticModel : semanticModel.Compilation.GetSemanticModel(syntax.SyntaxTree);

        var inputs = new List<InputDecl>();
        foreach (var parameter in method.Parameters)
        {
            var location = LocationInfo.From(parameter.Locations.FirstOrDefault());
            var shape = parameter.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == DslNames.Shape);
            if (parameter.Type.ToDisplayString() != DslNames.Tensor || shape is null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidForward, location, type.Name,
                    $"parameter '{parameter.Name}' must be a Tensor with a [Shape(...)]"));
                continue;
            }
            var dims = shape.ConstructorArguments.Length > 0 && shape.ConstructorArguments[0].Kind == TypedConstantKind.Array
                ? shape.ConstructorArguments[0].Values.Select(v => v.Value as string ?? "").ToEquatableArray()
                : EquatableArray<string>.Empty;
            var dtype = DType.F32;
            foreach (var named in shape.NamedArguments)
                if (named.Key == "DType" && named.Value.Value is int value && System.Enum.TryParse<DType>(EnumName(named.Value.Type, value), out var declared))
                    dtype = declared;
            inputs.Add(new InputDecl(parameter.Name, dims, dtype, location));
        }

        var body = new ForwardBodyParser(model, type, diagnostics, ct).ParseBlock(syntax.Body);
        return new ForwardDecl(inputs.ToEquatableArray(), body.ToEquatableArray(), methodLocation);
    }

    internal static string? EnumName(ITypeSymbol? enumType, int value) =>
        enumType?.GetMembers().OfType<IFieldSymbol>().FirstOrDefault(f => f.HasConstantValue && (int)f.ConstantValue! == value)?.Name;
}
