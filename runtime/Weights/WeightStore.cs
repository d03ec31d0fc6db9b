using System.Text.Json;

namespace Qwen2VL.Runtime;

/// <summary>
/// The weights of a checkpoint: one model.safetensors or several shards listed by
/// model.safetensors.index.json. Names the model asks for pass through <see cref="Resolver"/> first,
/// which lets the model layer read both legacy and new checkpoint spellings.
/// </summary>
public sealed class WeightStore : IDisposable
{
    private readonly SafetensorsFile[] _files;
    private readonly Dictionary<string, SafetensorsFile> _byName;
    private readonly string _source;

    /// <summary>Maps a name the model uses to the name stored in the checkpoint; null means identity.</summary>
    public Func<string, string>? Resolver { get; set; }

    public IEnumerable<string> Names => _byName.Keys;

    private WeightStore(SafetensorsFile[] files, Dictionary<string, SafetensorsFile> byName, string source)
    {
        _files = files;
        _byName = byName;
        _source = source;
    }

    public static WeightStore OpenFile(string path)
    {
        SafetensorsFile file = SafetensorsFile.Open(path);
        return new WeightStore([file], file.Tensors.Keys.ToDictionary(n => n, _ => file, StringComparer.Ordinal), Path.GetFileName(path));
    }

    public static WeightStore OpenDirectory(string dir)
    {
        if (!Directory.Exists(dir))
            throw new WeightException($"model directory not found: {dir}");
        string index = Path.Combine(dir, "model.safetensors.index.json");
        string single = Path.Combine(dir, "model.safetensors");
        if (File.Exists(index)) return OpenSharded(dir, index);
        if (File.Exists(single)) return OpenFile(single);
        throw new WeightException($"{dir}: neither model.safetensors nor model.safetensors.index.json found");
    }

    private static WeightStore OpenSharded(string dir, string indexPath)
    {
        Dictionary<string, string> weightMap = ReadWeightMap(indexPath);
        string[] shardNames = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        string[] missing = shardNames.Where(s => !File.Exists(Path.Combine(dir, s))).ToArray();
        if (missing.Length > 0)
            throw new WeightException($"model.safetensors.index.json lists shard files that are missing: {string.Join(", ", missing)}");

        var files = new List<SafetensorsFile>();
        try
        {
            var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (string shard in shardNames)
            {
                SafetensorsFile file = SafetensorsFile.Open(Path.Combine(dir, shard));
                files.Add(file);
                shards[shard] = file;
            }
            var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (name, shard) in weightMap)
            {
                SafetensorsFile file = shards[shard];
                if (!file.Tensors.ContainsKey(name))
                    throw new WeightException($"model.safetensors.index.json maps '{name}' to {shard}, which does not contain it");
                byName[name] = file;
            }
            return new WeightStore(files.ToArray(), byName, "model.safetensors.index.json");
        }
        catch
        {
            foreach (SafetensorsFile file in files) file.Dispose();
            throw;
        }
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        const string file = "model.safetensors.index.json";
        try
        {
            using JsonDocument document = StrictJson.ReadFile(indexPath, file);
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out JsonElement map)
                || map.ValueKind != JsonValueKind.Object)
                throw new WeightException($"{file}: missing object 'weight_map'");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                string? shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString() : null;
                // A shard name with a directory part could read files outside the model directory.
                if (string.IsNullOrEmpty(shard) || shard != Path.GetFileName(shard))
                    throw new WeightException($"{file}: weight_map entry '{entry.Name}' must be a shard file name, got {entry.Value.GetRawText()}");
                result[entry.Name] = shard;
            }
            return result;
        }
        catch (ModelException e) when (e is not WeightException)
        {
            throw new WeightException(e.Message, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightException($"{file}: cannot read ({e.Message})", e);
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(Stored(name));

    public TensorInfo Info(string name) => FileOf(name).Info(Stored(name));

    public float[] ReadFloat32(string name) => FileOf(name).ReadFloat32(MarkUsed(name));

    public long[] ReadInt64(string name) => FileOf(name).ReadInt64(Stored(name));

    /// <summary>
    /// Reads a weight onto the device as float32, checking the checkpoint shape against the shape the
    /// model expects (skipped when none is given).
    /// </summary>
    /// <summary>
    /// Where <see cref="Load"/> puts a weight: a tensor (a view into a training parameter buffer, say) that receives the
    /// checkpoint's values and is returned instead of a fresh allocation; null, or a null result, allocates as usual.
    /// Loading the same name twice then returns the same storage (tied weights share one parameter).
    /// </summary>
    public Func<string, DeviceTensor?>? Destination { get; set; }

    /// <summary>
    /// Where the checkpoint's values go when the <see cref="Destination"/> tensor does not take them itself: training with
    /// bf16 compute reads them into the f32 masters, and the destination (the 16-bit compute weights, or an f32 copy
    /// of them) is filled afterwards with their rounding (<c>ParameterSet.RoundComputeWeights</c>). Null: into the destination.
    /// </summary>
    public Func<string, DeviceTensor?>? ValuesInto { get; set; }

    /// <summary>
    /// Which weights stay bf16 in memory: for a name it accepts whose checkpoint dtype is BF16, <see cref="Load"/>
    /// returns a bf16 tensor — on the cpu device read in place from the mapping (no widening, no copy), on an ILGPU
    /// device copied into a 16-bit buffer — which only a GEMM may read as its weight operand, so accept only such
    /// weights. Null: every weight is widened to f32. Ignored where <see cref="Destination"/> supplies the storage.
    /// </summary>
    public Func<string, bool>? KeepBf16 { get; set; }

    /// <summary>Elements loaded as bf16 tensors through <see cref="KeepBf16"/> so far (each stored tensor once).</summary>
    public long Bf16Elements => Interlocked.Read(ref _bf16Elements);

    /// <summary>
    /// Bytes of the weight tensors <see cref="Load"/> has made so far, each stored tensor counted once: 4 per element
    /// of an f32 tensor, 2 per element of a bf16 one (mapped in place or copied). What the loaded weights occupy in
    /// memory, the figure <c>--dtype bf16</c> halves (storage supplied by <see cref="Destination"/> is not counted).
    /// </summary>
    public long LoadedBytes => Interlocked.Read(ref _loadedBytes);

    private long _bf16Elements, _loadedBytes;

    /// <summary>
    /// Tensors already loaded, by stored name: a weight two runners read (the embedding table that is also the tied
    /// lm_head) is one tensor in memory, not two. Weights are read-only at inference; training supplies its own
    /// storage through <see cref="Destination"/>, which already shares.
    /// </summary>
    private readonly Dictionary<string, (ComputeContext Context, DeviceTensor Tensor)> _loaded = new(StringComparer.Ordinal);

    public DeviceTensor Load(ComputeContext ctx, string name, params int[] expectedShape)
    {
        TensorInfo info = Info(name);
        MarkUsed(name);
        int[] shape = info.Shape.Select(d => checked((int)d)).ToArray();
        if (expectedShape.Length > 0 && !shape.SequenceEqual(expectedShape))
            throw new WeightException(
                $"{name}: checkpoint shape {SafetensorsDTypes.FormatShape(info.Shape)}, model expects {SafetensorsDTypes.FormatShape(expectedShape)}");
        DeviceTensor? destination = Destination?.Invoke(name);
        if (destination is null)
        {
            string stored = Stored(name);
            lock (_loaded)
            {
                if (_loaded.TryGetValue(stored, out var earlier) && earlier.Context == ctx) return earlier.Tensor;
            }
            DeviceTensor tensor = LoadNew(ctx, name, info, shape);
            lock (_loaded) _loaded[stored] = (ctx, tensor);
            Interlocked.Add(ref _loadedBytes, (tensor.IsBf16 ? 2L : 4L) * tensor.Length);
            return tensor;
        }
        if (!destination.Shape.SequenceEqual(shape))
            throw new WeightException($"{name}: checkpoint shape {SafetensorsDTypes.FormatShape(info.Shape)}, destination {destination}");
        DeviceTensor values = ValuesInto?.Invoke(name) ?? destination;
        if (!values.Shape.SequenceEqual(shape))
            throw new WeightException($"{name}: checkpoint shape {SafetensorsDTypes.FormatShape(info.Shape)}, values into {values}");
        if (ctx.IsCpu) FileOf(name).ReadFloat32(Stored(name), values.Span);
        else ctx.CopyFrom(ReadFloat32(name), values);
        return destination;
    }

    private DeviceTensor LoadNew(ComputeContext ctx, string name, TensorInfo info, int[] shape)
    {
        if (info.DType == SafetensorsDType.BF16 && KeepBf16?.Invoke(name) == true)
        {
            ReadOnlyMemory<ushort> bits = FileOf(name).MapBf16(Stored(name));
            DeviceTensor bf16 = ctx.IsCpu ? ctx.WrapBf16(bits, shape) : ctx.UploadBf16(bits.Span, shape);
            Interlocked.Add(ref _bf16Elements, bf16.Length);
            return bf16;
        }
        DeviceTensor tensor = ctx.Allocate(shape);
        try
        {
            if (ctx.IsCpu) FileOf(name).ReadFloat32(Stored(name), tensor.Span);
            else ctx.CopyFrom(ReadFloat32(name), tensor);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        return tensor;
    }

    private string Stored(string name) => Resolver?.Invoke(name) ?? name;

    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    private string MarkUsed(string name)
    {
        string stored = Stored(name);
        lock (_used) _used.Add(stored);
        return stored;
    }

    /// <summary>
    /// Stored tensors nothing has read (<see cref="Load"/> or <see cref="ReadFloat32"/>) so far, by stored name: after
    /// a model is built, the checkpoint tensors it does not use (a mistyped name, another architecture's layer).
    /// </summary>
    public IReadOnlyList<string> UnusedNames
    {
        get { lock (_used) return _byName.Keys.Where(n => !_used.Contains(n)).Order(StringComparer.Ordinal).ToList(); }
    }

    private SafetensorsFile FileOf(string name)
    {
        string stored = Stored(name);
        if (_byName.TryGetValue(stored, out SafetensorsFile? file)) return file;
        string shown = stored == name ? $"'{name}'" : $"'{name}' (stored as '{stored}')";
        throw new WeightException($"weight {shown} not found in {_source}; {SafetensorsHeader.CloseNames(stored, _byName.Keys)}");
    }

    public void Dispose()
    {
        foreach (SafetensorsFile file in _files) file.Dispose();
    }
}
