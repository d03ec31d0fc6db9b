using System.Text.Json;

namespace Qwen2VL.Runtime.Aot;

/// <summary>A manifest field is missing or has the wrong type; <see cref="PtxManifest.Parse"/> adds the file name.</summary>
internal sealed class ManifestFormatException(string message) : Exception(message);

/// <summary>Reads the JSON written by <see cref="PtxManifest.ToJsonBytes"/>, naming the first field that is missing or mistyped.</summary>
internal static class ManifestReader
{
    public static PtxManifest Read(JsonElement root)
    {
        RequireKind(root, JsonValueKind.Object, "the manifest");
        int format = Int(root, "format", "the manifest");
        if (format != PtxManifest.CurrentFormat)
            throw new ManifestFormatException($"manifest format {format} is not supported (this runtime reads format {PtxManifest.CurrentFormat})");
        var config = Property(root, "config", "the manifest");
        return new PtxManifest(
            format,
            String(root, "ilgpuVersion", "the manifest"),
            String(root, "buildConfiguration", "the manifest"),
            Strings(root, "architectures", "the manifest"),
            config.ValueKind == JsonValueKind.Null ? null : Config(config),
            Array(root, "modules", "the manifest").Select((m, i) => Module(m, $"modules[{i}]")).ToArray(),
            Array(root, "kernels", "the manifest").Select((k, i) => Kernel(k, $"kernels[{i}]")).ToArray());
    }

    private static PtxManifestConfig Config(JsonElement e)
    {
        RequireKind(e, JsonValueKind.Object, "config");
        var dims = Property(e, "dims", "config");
        RequireKind(dims, JsonValueKind.Object, "config.dims");
        // "consts" came after the first manifests: a manifest without it records no [Const] values.
        var consts = e.TryGetProperty("consts", out var c) ? c : default;
        if (consts.ValueKind != JsonValueKind.Undefined)
            RequireKind(consts, JsonValueKind.Object, "config.consts");
        return new PtxManifestConfig(
            String(e, "name", "config"),
            String(e, "sha256", "config"),
            dims.EnumerateObject().Select(module =>
            {
                RequireKind(module.Value, JsonValueKind.Object, "config.dims." + module.Name);
                return new PtxManifestDims(module.Name, module.Value.EnumerateObject()
                    .Select(d => new KeyValuePair<string, int>(d.Name, Int(module.Value, d.Name, "config.dims." + module.Name)))
                    .ToArray());
            }).ToArray(),
            consts.ValueKind == JsonValueKind.Undefined ? [] : consts.EnumerateObject().Select(module =>
            {
                RequireKind(module.Value, JsonValueKind.Object, "config.consts." + module.Name);
                return new PtxManifestConsts(module.Name, module.Value.EnumerateObject()
                    .Select(v => new KeyValuePair<string, float>(v.Name, Float(v.Value, $"config.consts.{module.Name}.{v.Name}")))
                    .ToArray());
            }).ToArray());
    }

    private static PtxManifestModule Module(JsonElement e, string where)
    {
        RequireKind(e, JsonValueKind.Object, where);
        return new PtxManifestModule(String(e, "name", where), String(e, "generatedCodeHash", where));
    }

    private static PtxManifestKernel Kernel(JsonElement e, string where)
    {
        RequireKind(e, JsonValueKind.Object, where);
        return new PtxManifestKernel(
            String(e, "name", where),
            String(e, "module", where),
            String(e, "architecture", where),
            String(e, "target", where),
            String(e, "instructionSet", where),
            String(e, "file", where),
            String(e, "sha256", where),
            String(e, "entryPoint", where),
            String(e, "grouping", where),
            Int(e, "sharedMemoryBytes", where),
            Strings(e, "parameterTypes", where),
            Strings(e, "specializationConstants", where),
            String(e, "generatedCodeHash", where));
    }

    private static JsonElement Property(JsonElement e, string name, string where) =>
        e.TryGetProperty(name, out var value) ? value : throw new ManifestFormatException($"{where} has no \"{name}\"");

    private static string String(JsonElement e, string name, string where)
    {
        var value = Property(e, name, where);
        RequireKind(value, JsonValueKind.String, $"{where}.{name}");
        return value.GetString()!;
    }

    private static int Int(JsonElement e, string name, string where)
    {
        var value = Property(e, name, where);
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int result))
            throw new ManifestFormatException($"{where}.{name} must be an integer");
        return result;
    }

    private static float Float(JsonElement value, string where)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetSingle(out float result) || !float.IsFinite(result))
            throw new ManifestFormatException($"{where} must be a finite number");
        return result;
    }

    private static JsonElement.ArrayEnumerator Array(JsonElement e, string name, string where)
    {
        var value = Property(e, name, where);
        RequireKind(value, JsonValueKind.Array, $"{where}.{name}");
        return value.EnumerateArray();
    }

    private static string[] Strings(JsonElement e, string name, string where) =>
        Array(e, name, where).Select((item, i) =>
        {
            RequireKind(item, JsonValueKind.String, $"{where}.{name}[{i}]");
            return item.GetString()!;
        }).ToArray();

    private static void RequireKind(JsonElement e, JsonValueKind kind, string what)
    {
        if (e.ValueKind != kind)
            throw new ManifestFormatException($"{what} must be {(kind == JsonValueKind.Object ? "an object" : kind == JsonValueKind.Array ? "an array" : "a " + kind.ToString().ToLowerInvariant())}, not {e.ValueKind.ToString().ToLowerInvariant()}");
    }
}
