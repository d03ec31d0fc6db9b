using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// The generated-code hash that ties a PTX file to the code it was compiled from. It is built from source-level
/// facts only (the generator's FusedGraph dump, kernel names and signatures, epilogue fields, launch constants),
/// never from the assembly MVID or IL, so that rebuilding the same sources gives the same hash on any machine.
/// </summary>
internal static class ModuleIdentity
{
    private const string Rooted = "Rooted in the trimmed bundle (TrimmerRootAssembly in models/qwen2vl/cli/Properties/PublishProfiles/linux-x64.pubxml): every member it reflects over is kept.";

    /// <summary>Identity of a generated [Module]: its FusedGraph dump plus the names and signatures of its GpuKernels.</summary>
    public static string ForModule(Type module, string fusedGraph, IEnumerable<MethodInfo> kernels, IEnumerable<Type> epilogues)
    {
        var text = new StringBuilder();
        text.Append("module ").Append(module.FullName).Append('\n');
        text.Append("fused-graph\n").Append(fusedGraph.ReplaceLineEndings("\n")).Append('\n');
        text.Append("kernels\n");
        foreach (var kernel in kernels.OrderBy(k => k.Name, StringComparer.Ordinal))
            text.Append(Signature(kernel)).Append('\n');
        text.Append("epilogues\n");
        foreach (var epilogue in epilogues.OrderBy(e => e.Name, StringComparer.Ordinal))
            text.Append(Fields(epilogue)).Append('\n');
        return Sha256(text.ToString());
    }

    /// <summary>
    /// Identity of the runtime's shared kernels (GEMM, attention): each kernel class's method signatures and its
    /// constants (tile sizes, head-dim limit), which the host launch code relies on.
    /// </summary>
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = Rooted)]
    public static string ForRuntime(IEnumerable<Type> kernelClasses)
    {
        var text = new StringBuilder("runtime\n");
        foreach (var type in kernelClasses.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            text.Append("class ").Append(type.Name).Append('\n');
            var methods = type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly);
            foreach (var line in methods.Select(Signature).Order(StringComparer.Ordinal))
                text.Append("  ").Append(line).Append('\n');
            var constants = type.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
                .Where(f => f.IsLiteral)
                .Select(f => f.Name + " = " + Convert.ToString(f.GetRawConstantValue(), System.Globalization.CultureInfo.InvariantCulture));
            foreach (var line in constants.Order(StringComparer.Ordinal))
                text.Append("  const ").Append(line).Append('\n');
        }
        return Sha256(text.ToString());
    }

    public static string Sha256(string text) => Sha256(Encoding.UTF8.GetBytes(text));

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static string Signature(MethodInfo method)
    {
        var generic = method.IsGenericMethodDefinition
            ? "<" + string.Join(", ", method.GetGenericArguments().Select(a => a.Name)) + ">"
            : "";
        return $"{TypeNames.Format(method.ReturnType)} {method.Name}{generic}(" +
               string.Join(", ", method.GetParameters().Select(p => (p.ParameterType.IsByRef ? "ref " + TypeNames.Format(p.ParameterType.GetElementType()!) : TypeNames.Format(p.ParameterType)) + " " + p.Name)) + ")";
    }

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static string Fields(Type type)
    {
        var fields = type.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)
            .Select(f => TypeNames.Format(f.FieldType) + " " + f.Name)
            .Order(StringComparer.Ordinal);
        return type.Name + " { " + string.Join("; ", fields) + " }";
    }
}
