using System.Diagnostics.CodeAnalysis;
using System.Reflection;

namespace Qwen2VL.Dsl;

/// <summary>A module could not be bound to its config and checkpoint (missing key, missing or misshapen tensor).</summary>
public sealed class ModuleBindingException(string message) : Exception(message);

/// <summary>
/// Binds a <see cref="ModuleAttribute"/> object by reflection, the way the generated runner does it from metadata:
/// <c>[Dim(key)]</c> int fields and <c>[Const(key)]</c> float fields from the config, <c>[Param]</c> tensors from the checkpoint with their shapes checked
/// against the dim expressions, and <c>[Submodule]</c> children (arrays sized by their Count dim) recursively.
/// Expression-bodied <c>[Dim]</c> properties are left to compute themselves.
/// </summary>
public static class ModuleBinder
{
    private const string Rooted = "Rooted in the trimmed bundle (TrimmerRootAssembly in models/qwen2vl/cli/Properties/PublishProfiles/linux-x64.pubxml): every member it reflects over is kept.";

    private const BindingFlags Members = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;

    /// <param name="module">the module instance to fill in</param>
    /// <param name="config">dotted config key (array entries by index, e.g. <c>rope_scaling.mrope_section.0</c>) → value, or null when absent</param>
    /// <param name="weights">full checkpoint name → (shape, data), or null when absent</param>
    /// <param name="prefix">the module's checkpoint prefix, ending in '.' (or empty)</param>
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = Rooted)]
    public static void Bind(object module, Func<string, double?> config,
        Func<string, (int[] Shape, double[] Data)?> weights, string prefix)
    {
        var type = module.GetType();
        BindDims(module, type, config);
        BindConsts(module, type, config);
        var dims = DimValues(module, type);
        int? Dim(string name) => dims.TryGetValue(name, out var v) ? v : null;

        foreach (var f in type.GetFields(Members))
        {
            if (f.GetCustomAttribute<ParamAttribute>() is { } p)
                f.SetValue(module, LoadParam(type, p, Dim, weights, prefix));
            else if (f.GetCustomAttribute<SubmoduleAttribute>() is { } s)
                f.SetValue(module, CreateChild(type, f.Name, f.FieldType, s, Dim, config, weights, prefix));
        }
        foreach (var pr in type.GetProperties(Members))
        {
            if (pr.GetCustomAttribute<ParamAttribute>() is { } p)
                Setter(type, pr).SetValue(module, LoadParam(type, p, Dim, weights, prefix));
            else if (pr.GetCustomAttribute<SubmoduleAttribute>() is { } s)
                Setter(type, pr).SetValue(module, CreateChild(type, pr.Name, pr.PropertyType, s, Dim, config, weights, prefix));
        }
    }

    /// <summary>Creates a module of type <typeparamref name="T"/> and binds it.</summary>
    public static T Create<T>(Func<string, double?> config, Func<string, (int[] Shape, double[] Data)?> weights, string prefix)
        where T : new()
    {
        var m = new T();
        Bind(m, config, weights, prefix);
        return m;
    }

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static void BindDims(object module, Type type, Func<string, double?> config)
    {
        foreach (var f in type.GetFields(Members))
        {
            if (f.GetCustomAttribute<DimAttribute>() is not { } d) continue;
            if (f.FieldType != typeof(int))
                throw new ModuleBindingException($"{type.Name}.{f.Name}: [Dim] fields must be int");
            if (d.ConfigKey is null)
                throw new ModuleBindingException($"{type.Name}.{f.Name}: a [Dim] field needs a config key");
            f.SetValue(module, ReadDim(type, f.Name, d, config));
        }
        foreach (var p in type.GetProperties(Members))
        {
            // Expression-bodied dims compute themselves; only settable properties with a key are bound.
            if (p.GetCustomAttribute<DimAttribute>() is { ConfigKey: not null } d && p.CanWrite)
                p.SetValue(module, ReadDim(type, p.Name, d, config));
        }
    }

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static void BindConsts(object module, Type type, Func<string, double?> config)
    {
        foreach (var f in type.GetFields(Members))
        {
            if (f.GetCustomAttribute<ConstAttribute>() is not { } c) continue;
            if (f.FieldType != typeof(float))
                throw new ModuleBindingException($"{type.Name}.{f.Name}: [Const] fields must be float");
            f.SetValue(module, ReadConst(type, f.Name, c, config));
        }
        foreach (var p in type.GetProperties(Members))
        {
            if (p.GetCustomAttribute<ConstAttribute>() is not { } c) continue;
            if (p.PropertyType != typeof(float))
                throw new ModuleBindingException($"{type.Name}.{p.Name}: [Const] properties must be float");
            Setter(type, p).SetValue(module, ReadConst(type, p.Name, c, config));
        }
    }

    private static float ReadConst(Type type, string member, ConstAttribute c, Func<string, double?> config)
    {
        if (string.IsNullOrEmpty(c.ConfigKey))
            throw new ModuleBindingException($"{type.Name}.{member}: a [Const] needs a config key");
        double? v = config(c.ConfigKey);
        if (v is null && double.IsNaN(c.Default))
            throw new ModuleBindingException($"config key '{c.ConfigKey}' is missing (needed by {type.Name}.{member}, no default)");
        // The generated runner reads the same double and narrows it to the float the kernels take.
        return (float)(v ?? c.Default);
    }

    private static int ReadDim(Type type, string member, DimAttribute d, Func<string, double?> config)
    {
        string key = d.ConfigKey!;
        double? v = config(key);
        if (v is null)
        {
            if (d.Default == int.MinValue)
                throw new ModuleBindingException($"config key '{key}' is missing (needed by {type.Name}.{member}, no default)");
            return d.Default;
        }
        if (v.Value != Math.Floor(v.Value) || v.Value < int.MinValue || v.Value > int.MaxValue)
            throw new ModuleBindingException($"config key '{key}' = {v.Value} is not an integer (needed by {type.Name}.{member})");
        return (int)v.Value;
    }

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private static Dictionary<string, int> DimValues(object module, Type type)
    {
        var dims = new Dictionary<string, int>();
        foreach (var f in type.GetFields(Members))
            if (f.GetCustomAttribute<DimAttribute>() is not null) dims[f.Name] = (int)f.GetValue(module)!;
        foreach (var p in type.GetProperties(Members))
            if (p.GetCustomAttribute<DimAttribute>() is not null && p.PropertyType == typeof(int))
                dims[p.Name] = (int)p.GetValue(module)!;
        return dims;
    }

    private static Tensor LoadParam(Type type, ParamAttribute p, Func<string, int?> dim,
        Func<string, (int[] Shape, double[] Data)?> weights, string prefix)
    {
        string name = prefix + p.CheckpointName;
        var expected = new int[p.Shape.Length];
        for (int i = 0; i < expected.Length; i++)
        {
            try { expected[i] = DimExpression.Evaluate(p.Shape[i], dim); }
            catch (FormatException e) { throw new ModuleBindingException($"{type.Name} parameter '{name}': {e.Message}"); }
        }
        var w = weights(name) ?? throw new ModuleBindingException(
            $"checkpoint tensor '{name}' is missing (expected shape {Tensor.Format(expected)})");
        if (!w.Shape.AsSpan().SequenceEqual(expected))
            throw new ModuleBindingException(
                $"checkpoint tensor '{name}' has shape {Tensor.Format(w.Shape)}, expected {Tensor.Format(expected)} " +
                $"({string.Join(", ", p.Shape)})");
        return new Tensor((int[])w.Shape.Clone(), w.Data);
    }

    private static object CreateChild(Type type, string member, Type childType, SubmoduleAttribute s,
        Func<string, int?> dim, Func<string, double?> config, Func<string, (int[] Shape, double[] Data)?> weights,
        string prefix)
    {
        string childPrefix = prefix + s.CheckpointPrefix;
        if (childPrefix.Length > 0 && !childPrefix.EndsWith('.')) childPrefix += ".";
        if (!childType.IsArray)
        {
            var child = NewModule(type, member, childType);
            Bind(child, config, weights, childPrefix);
            return child;
        }
        if (s.Count is null)
            throw new ModuleBindingException($"{type.Name}.{member}: a submodule array needs Count");
        int count;
        try { count = DimExpression.Evaluate(s.Count, dim); }
        catch (FormatException e) { throw new ModuleBindingException($"{type.Name}.{member}: {e.Message}"); }
        if (count < 0) throw new ModuleBindingException($"{type.Name}.{member}: Count '{s.Count}' = {count} is negative");
        var elementType = childType.GetElementType()!;
        var array = Array.CreateInstance(elementType, count);
        for (int i = 0; i < count; i++)
        {
            var child = NewModule(type, member, elementType);
            Bind(child, config, weights, childPrefix + i + ".");
            array.SetValue(child, i);
        }
        return array;
    }

    [UnconditionalSuppressMessage("Trimming", "IL2067", Justification = Rooted)]
    private static object NewModule(Type parent, string member, Type t) =>
        Activator.CreateInstance(t) ?? throw new ModuleBindingException($"{parent.Name}.{member}: cannot create {t.Name}");

    private static PropertyInfo Setter(Type type, PropertyInfo p) =>
        p.CanWrite ? p : throw new ModuleBindingException($"{type.Name}.{p.Name} has no setter to bind");
}
