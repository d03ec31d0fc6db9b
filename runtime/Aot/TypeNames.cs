using System.Text;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// Type names as C# spells them, without namespaces (<c>ArrayView&lt;float&gt;</c>, <c>VisionBlock.GpuKernels.G2_Linear_Epilogue</c>),
/// so that a manifest reads naturally and does not depend on assembly versions.
/// </summary>
internal static class TypeNames
{
    private static readonly Dictionary<Type, string> Keywords = new()
    {
        [typeof(bool)] = "bool", [typeof(byte)] = "byte", [typeof(sbyte)] = "sbyte", [typeof(short)] = "short",
        [typeof(ushort)] = "ushort", [typeof(int)] = "int", [typeof(uint)] = "uint", [typeof(long)] = "long",
        [typeof(ulong)] = "ulong", [typeof(float)] = "float", [typeof(double)] = "double", [typeof(Half)] = "Half",
    };

    public static string Format(Type type)
    {
        if (Keywords.TryGetValue(type, out var keyword)) return keyword;
        var builder = new StringBuilder();
        if (type.IsNested && !type.IsGenericParameter) builder.Append(Format(type.DeclaringType!)).Append('.');
        var name = type.Name;
        int tick = name.IndexOf('`');
        builder.Append(tick < 0 ? name : name[..tick]);
        if (type.IsGenericType)
        {
            // Generic arguments of the declaring type are listed on it already; only this type's own ones follow.
            var arguments = type.GetGenericArguments();
            int inherited = type.IsNested ? type.DeclaringType!.GetGenericArguments().Length : 0;
            if (arguments.Length > inherited)
                builder.Append('<').Append(string.Join(", ", arguments.Skip(inherited).Select(Format))).Append('>');
        }
        return builder.ToString();
    }
}
