using System.Text.Json;

namespace Qwen2VL.Runtime.Aot;

/// <summary>One PTX file of an ahead-of-time build.</summary>
/// <param name="File">Path relative to the build folder, '/'-separated: <c>sm_80/VisionBlock.G1_LayerNorm.ptx</c>.</param>
/// <param name="Sha256">sha256 (lower-case hex) of the file's bytes.</param>
/// <param name="EntryPoint">The <c>.entry</c> name inside the PTX (<c>Kernel_G1_LayerNorm</c>); what the driver looks up.</param>
/// <param name="Grouping"><c>implicit</c> (auto-grouped, index first) or <c>explicit</c> (grid and group given at launch).</param>
/// <param name="SharedMemoryBytes">Static shared memory of the kernel in bytes, as ILGPU's entry point records it (the loader rebuilds that entry point).</param>
/// <param name="Target">The <c>.target</c> written: the architecture, or <c>sm_90a</c> when Hopper-only instructions are used.</param>
public sealed record PtxManifestKernel(
    string Name,
    string Module,
    string Architecture,
    string Target,
    string InstructionSet,
    string File,
    string Sha256,
    string EntryPoint,
    string Grouping,
    int SharedMemoryBytes,
    IReadOnlyList<string> ParameterTypes,
    IReadOnlyList<string> SpecializationConstants,
    string GeneratedCodeHash)
{
    public string Key => Module + "." + Name;
}

/// <summary>A module's generated-code hash, listed once so a reader sees which modules a build covers.</summary>
public sealed record PtxManifestModule(string Name, string GeneratedCodeHash);

/// <summary>
/// The config a build was made for. The kernels are size-generic and take [Const] floats as arguments, so the config
/// changes only this record: its name (<c>tiny</c>, <c>2b</c>, <c>model</c> for --model), the sha256 of the
/// config.json bytes, each module's [Dim] values and each module's [Const] values (modules that have some) read from it.
/// </summary>
public sealed record PtxManifestConfig(string Name, string Sha256, IReadOnlyList<PtxManifestDims> Dims, IReadOnlyList<PtxManifestConsts> Consts);

/// <summary>The config-bound [Dim] values of one module, ordered by dim name.</summary>
public sealed record PtxManifestDims(string Module, IReadOnlyList<KeyValuePair<string, int>> Values);

/// <summary>The [Const] float values of one module (what its runner passes to the kernels), ordered by name.</summary>
public sealed record PtxManifestConsts(string Module, IReadOnlyList<KeyValuePair<string, float>> Values);

/// <summary>
/// <c>manifest.json</c> of a <c>qwen2vl compile</c> output folder: every kernel's PTX file per architecture with its
/// hash, entry point, parameter types and the generated-code hash it was compiled from. Written with sorted
/// lists, LF newlines and no timestamps or absolute paths, so the same sources always give the same bytes.
/// </summary>
/// <param name="BuildConfiguration">
/// The configuration the model and runtime assemblies were built in (<c>Release</c>): ILGPU compiles their IL, and
/// Debug IL gives other (equivalent) PTX than Release IL, so builds are reproducible per configuration.
/// </param>
public sealed record PtxManifest(
    int Format,
    string IlgpuVersion,
    string BuildConfiguration,
    IReadOnlyList<string> Architectures,
    PtxManifestConfig? Config,
    IReadOnlyList<PtxManifestModule> Modules,
    IReadOnlyList<PtxManifestKernel> Kernels)
{
    public const int CurrentFormat = 2; // 2: sharedMemoryBytes per kernel
    public const string FileName = "manifest.json";

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = true,
        NewLine = "\n",
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // ArrayView<float>, not ArrayView\u003Cfloat\u003E
    };

    public byte[] ToJsonBytes()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteNumber("format", Format);
            w.WriteString("ilgpuVersion", IlgpuVersion);
            w.WriteString("buildConfiguration", BuildConfiguration);
            WriteStrings(w, "architectures", Architectures);
            if (Config is null) w.WriteNull("config");
            else
            {
                w.WriteStartObject("config");
                w.WriteString("name", Config.Name);
                w.WriteString("sha256", Config.Sha256);
                w.WriteStartObject("dims");
                foreach (var dims in Config.Dims)
                {
                    w.WriteStartObject(dims.Module);
                    foreach (var (name, value) in dims.Values) w.WriteNumber(name, value);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteStartObject("consts");
                foreach (var consts in Config.Consts)
                {
                    w.WriteStartObject(consts.Module);
                    foreach (var (name, value) in consts.Values) w.WriteNumber(name, value); // shortest round-trip float text
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteStartArray("modules");
            foreach (var module in Modules)
            {
                w.WriteStartObject();
                w.WriteString("name", module.Name);
                w.WriteString("generatedCodeHash", module.GeneratedCodeHash);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("kernels");
            foreach (var k in Kernels)
            {
                w.WriteStartObject();
                w.WriteString("name", k.Name);
                w.WriteString("module", k.Module);
                w.WriteString("architecture", k.Architecture);
                w.WriteString("target", k.Target);
                w.WriteString("instructionSet", k.InstructionSet);
                w.WriteString("file", k.File);
                w.WriteString("sha256", k.Sha256);
                w.WriteString("entryPoint", k.EntryPoint);
                w.WriteString("grouping", k.Grouping);
                w.WriteNumber("sharedMemoryBytes", k.SharedMemoryBytes);
                WriteStrings(w, "parameterTypes", k.ParameterTypes);
                WriteStrings(w, "specializationConstants", k.SpecializationConstants);
                w.WriteString("generatedCodeHash", k.GeneratedCodeHash);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>Reads <c>manifest.json</c> from a build folder (or the file itself); a malformed file is a one-line <see cref="AotException"/>.</summary>
    public static PtxManifest Load(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new AotException($"PTX manifest not found: {file}");
        return Parse(File.ReadAllBytes(file), file);
    }

    public static PtxManifest Parse(byte[] json, string sourceName)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return ManifestReader.Read(doc.RootElement);
        }
        catch (JsonException e)
        {
            throw new AotException($"{sourceName} is not valid JSON: {e.Message}");
        }
        catch (ManifestFormatException e)
        {
            throw new AotException($"{sourceName}: {e.Message}");
        }
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var value in values) w.WriteStringValue(value);
        w.WriteEndArray();
    }
}
