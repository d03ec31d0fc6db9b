using System.Linq;
using Microsoft.CodeAnalysis;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Parsing;

/// <summary>Reads an op's declaration (the [Op] attribute and the method signature) into an <see cref="OpInfo"/>.</summary>
internal static class OpInfoReader
{
    public static OpInfo Read(IMethodSymbol method, AttributeData attribute)
    {
        var args = attribute.ConstructorArguments;
        var groupName = args.Length > 0 && args[0].Value is int g ? ModuleParser.EnumName(args[0].Type, g) : null;
        var group = System.Enum.TryParse<OpGroup>(groupName, out var parsed) && parsed is not (OpGroup.Leaf or OpGroup.Call) ? parsed : OpGroup.Elementwise;
        var shape = args.Length > 1 ? args[1].Value as string ?? "" : "";
        string? scalar = null, grad = null;
        foreach (var named in attribute.NamedArguments)
        {
            if (named.Key == "Scalar")
                scalar = named.Value.Value as string;
            else if (named.Key == "Grad")
                grad = named.Value.Value as string;
        }
        var parameters = method.Parameters.Select(p => new OpParameter(p.Name, KindOf(p))).ToEquatableArray();
        var declaredByDsl = method.ContainingType.ToDisplayString() == DslNames.Ops;
        var kind = OpTable.Resolve(method.Name, declaredByDsl, group, scalar is not null);
        return new OpInfo(method.Name, kind, group, shape, scalar, grad, parameters);
    }

    private static string KindOf(IParameterSymbol parameter)
    {
        if (parameter.IsParams)
            return "IntArray";
        var type = parameter.Type.ToDisplayString();
        if (type == DslNames.Tensor)
            return "Tensor";
        if (type == DslNames.Tensor + "?")
            return "OptionalTensor";
        return parameter.Type.SpecialType switch
        {
            SpecialType.System_Single or SpecialType.System_Double => "Float",
            SpecialType.System_Int32 or SpecialType.System_Int64 => "Int",
            _ => "Unsupported",
        };
    }
}
