using System.Diagnostics.CodeAnalysis;
using System.Reflection;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// The config.json a build is made for: a built-in one (<see cref="BuiltInConfigs"/>) or a model folder's. Its bytes
/// are hashed into the manifest and each module's config-bound [Dim] and [Const] values are recorded there.
/// </summary>
public sealed class AotConfig
{
    private const string Rooted = "Rooted in the trimmed bundle (TrimmerRootAssembly in models/qwen2vl/cli/Properties/PublishProfiles/linux-x64.pubxml): every member it reflects over is kept.";

    private const string DimAttributeName = "Qwen2VL.Dsl.DimAttribute";
    private const string ConstAttributeName = "Qwen2VL.Dsl.ConstAttribute";

    private AotConfig(string name, byte[] bytes, ModelConfig config)
    {
        Name = name;
        Bytes = bytes;
        Config = config;
    }

    /// <summary><c>tiny</c>, <c>2b</c>, … for built-in configs; the folder name for <c>--model</c>.</summary>
    public string Name { get; }

    public byte[] Bytes { get; }

    public ModelConfig Config { get; }

    public static AotConfig BuiltIn(string name)
    {
        var json = BuiltInConfigs.Get(name);
        return new AotConfig(name, System.Text.Encoding.UTF8.GetBytes(json), ModelConfig.Parse(json, $"built-in config {name}"));
    }

    public static AotConfig FromModelDirectory(string directory)
    {
        if (!Directory.Exists(directory)) throw new AotException($"model folder not found: {directory}");
        var path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new AotException($"model folder {directory} has no config.json");
        return new AotConfig(new DirectoryInfo(directory).Name, File.ReadAllBytes(path), ModelConfig.Load(path));
    }

    /// <summary>
    /// The [Dim("key")] values of each module under this config, and the [Const("key")] values of the modules that have
    /// some, modules and members ordered by name.
    /// </summary>
    public PtxManifestConfig ToManifest(IEnumerable<Type> moduleTypes)
    {
        var ordered = moduleTypes.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        return new(
            Name,
            ModuleIdentity.Sha256(Bytes),
            ordered.Select(t => new PtxManifestDims(t.Name, Dims(t))).ToArray(),
            ordered.Select(t => new PtxManifestConsts(t.Name, Consts(t))).Where(c => c.Values.Count > 0).ToArray());
    }

    /// <summary>As the generated runner binds them: the config's number (or the default) narrowed to float.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private KeyValuePair<string, float>[] Consts(Type module)
    {
        var consts = new List<KeyValuePair<string, float>>();
        foreach (var member in module.GetMembers(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance))
        {
            var attribute = member.GetCustomAttributesData().FirstOrDefault(a => a.AttributeType.FullName == ConstAttributeName);
            if (attribute is null || attribute.ConstructorArguments.Count == 0 || attribute.ConstructorArguments[0].Value is not string key)
                continue;
            var fallback = attribute.NamedArguments.FirstOrDefault(a => a.MemberName == "Default").TypedValue.Value as double?;
            double value = fallback is double d && !double.IsNaN(d) ? Config.GetDouble(key, d) : Config.GetDouble(key);
            consts.Add(new(member.Name, (float)value));
        }
        return consts.OrderBy(c => c.Key, StringComparer.Ordinal).ToArray();
    }

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = Rooted)]
    private KeyValuePair<string, int>[] Dims(Type module)
    {
        var dims = new List<KeyValuePair<string, int>>();
        foreach (var member in module.GetMembers(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance))
        {
            var attribute = member.GetCustomAttributesData().FirstOrDefault(a => a.AttributeType.FullName == DimAttributeName);
            if (attribute is null || attribute.ConstructorArguments.Count == 0 || attribute.ConstructorArguments[0].Value is not string key)
                continue; // derived dims (HeadDim => Embed / Heads) and input dims are not config-bound
            var fallback = attribute.NamedArguments.FirstOrDefault(a => a.MemberName == "Default").TypedValue.Value as int?;
            int value = fallback is int d && d != int.MinValue ? Config.GetInt(key, d) : Config.GetInt(key);
            dims.Add(new(member.Name, value));
        }
        return dims.OrderBy(d => d.Key, StringComparer.Ordinal).ToArray();
    }
}
