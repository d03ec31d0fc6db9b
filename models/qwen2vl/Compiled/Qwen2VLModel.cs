using Qwen2VL.Runtime.Training;
using Qwen2VL.Model.Decoder;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The whole Qwen2-VL model on the generated runners (spec §5–§7): vision tower, token embedding with the vision
/// rows scattered in, M-RoPE positions, decoder layers, final RMSNorm and the lm_head. The runners and the scatter
/// execute on the chosen device and the activations stay there; the host checks the ids, computes the positions and
/// copies only a step's inputs in and its asked outputs (logits of the rows asked for, or the loss) out
/// (<see cref="ComputeContext.Transfers"/> counts them).
/// </summary>
public sealed partial class Qwen2VLModel : IDisposable
{
    private readonly WeightStore _weights;
    private readonly VisionTower.Runner _vision;
    private readonly TokenEmbedding.Runner _embed;
    private readonly DecoderLayer.Runner[] _layers;
    private readonly FinalNorm.Runner _norm;
    private readonly LmHead.Runner _head;

    /// <summary>Device buffers the inputs of a step are copied into, reused from step to step (no allocation per call).</summary>
    private readonly StagingBuffers _staging;

    public ComputeContext Context { get; }
    public ModelConfig Config { get; }
    public int Hidden { get; }
    public int Vocab { get; }
    public int Layers => _layers.Length;
    public int SpatialMerge { get; }
    public VisionTokenIds TokenIds { get; }

    /// <summary>The config's <c>eos_token_id</c> (a number or a list); empty when the config has none.</summary>
    public IReadOnlyList<long> EosTokenIds { get; }

    /// <summary>The config's <c>pad_token_id</c>, if any.</summary>
    public long? PadTokenId { get; }

    /// <summary>True when the logits come from the embedding table (tie_word_embeddings, or no lm_head.weight stored).</summary>
    public bool TiedHead { get; }

    private Qwen2VLModel(ComputeContext ctx, ModelConfig config, WeightStore weights)
    {
        Context = ctx;
        Config = config;
        _weights = weights;
        Hidden = config.GetInt("hidden_size");
        Vocab = config.GetInt("vocab_size");
        SpatialMerge = config.GetInt("vision_config.spatial_merge_size", 2);
        TokenIds = new VisionTokenIds(config.GetInt("vision_start_token_id"), config.GetInt("image_token_id"), config.GetInt("video_token_id"));
        EosTokenIds = ConfigIds(config, "eos_token_id");
        PadTokenId = config.Has("pad_token_id") ? config.GetInt("pad_token_id") : null;
        int merged = config.GetInt("vision_config.hidden_size", 3584);
        if (merged != Hidden)
            throw new ConfigException($"config.json: vision_config.hidden_size = {merged} must equal the decoder's hidden_size = {Hidden}");

        _vision = new VisionTower.Runner(ctx, weights, config, "visual.");
        _embed = new TokenEmbedding.Runner(ctx, weights, config, "model.embed_tokens.");
        _layers = Enumerable.Range(0, config.GetInt("num_hidden_layers"))
            .Select(i => new DecoderLayer.Runner(ctx, weights, config, $"model.layers.{i}."))
            .ToArray();
        _norm = new FinalNorm.Runner(ctx, weights, config, "model.norm.");
        // Tied head (2B, spec §2.2): the embedding table is the output projection, whether or not a copy is stored.
        TiedHead = config.GetBool("tie_word_embeddings", false) || !weights.Contains("lm_head.weight");
        _head = new LmHead.Runner(ctx, weights, config, TiedHead ? "model.embed_tokens." : "lm_head.");
        _staging = new StagingBuffers(ctx);
    }

    /// <summary>
    /// Loads config.json (flat or with a nested text_config) and the weights (model.safetensors or a sharded
    /// index, legacy or new tensor names) from <paramref name="modelDir"/> onto <paramref name="device"/>.
    /// </summary>
    public static Qwen2VLModel Load(string modelDir, DeviceKind device) => Load(modelDir, device, training: null, KernelOptions.Jit);

    /// <summary>
    /// Loads as <see cref="Load(string, DeviceKind)"/>, taking the GPU kernels from a <c>qwen2vl compile</c> output
    /// folder (see <see cref="KernelLoader"/>): its manifest is checked against this build's generated code before
    /// any weight is read onto the device, and a stale or corrupt one is a <see cref="ModelException"/>.
    /// </summary>
    public static Qwen2VLModel Load(string modelDir, DeviceKind device, KernelOptions kernels) => Load(modelDir, device, training: null, kernels);

    /// <summary>
    /// Loads for inference; with <paramref name="bf16Weights"/> (BF16 checkpoint) the linear weights stay bf16 in memory
    /// (on the cpu device read in place from the checkpoint) (<see cref="Bf16Weights"/>): half the bytes per decode step.
    /// </summary>
    public static Qwen2VLModel Load(string modelDir, DeviceKind device, KernelOptions kernels, bool bf16Weights) =>
        Load(modelDir, device, training: null, kernels, bf16Compute: false, bf16Weights);

    /// <summary>Weight elements held in bf16 (see <see cref="Bf16Weights"/>; 0 unless loaded with bf16Weights).</summary>
    public long Bf16WeightElements => _weights.Bf16Elements;

    /// <summary>
    /// Bytes the loaded weights occupy (f32 tensors 4 per element, bf16 ones 2; a tied table and head once): about half
    /// of the f32 figure under <c>--dtype bf16</c>. Storage of training parameters is not counted.
    /// </summary>
    public long LoadedWeightBytes => _weights.LoadedBytes;

    /// <summary>What <see cref="KernelLoader"/> did with the kernel options, in one line (null without options).</summary>
    public string? KernelNote { get; private init; }

    /// <summary>
    /// Loads the model for training: every weight lives in one <see cref="ParameterSet"/> (f32 master weights, their
    /// gradients and AdamW moments in flat buffers); <paramref name="freeze"/> glob patterns ("visual.*") freeze
    /// parameters by checkpoint name. Biases and norm weights get no weight decay. With <paramref name="bf16Compute"/>
    /// the runners read bf16-rounded copies of the weights (<see cref="ParameterSet.ComputeWeight"/>: 16-bit, or f32 copies for norms, biases and the patch conv) while the f32
    /// masters are what the optimizer updates and checkpoints save.
    /// </summary>
    public static Qwen2VLModel LoadForTraining(string modelDir, DeviceKind device, IEnumerable<string> freeze, bool bf16Compute = false) =>
        Load(modelDir, device, training: freeze.ToList(), KernelOptions.Jit, bf16Compute);

    private static Qwen2VLModel Load(string modelDir, DeviceKind device, List<string>? training, KernelOptions kernels,
        bool bf16Compute = false, bool bf16Weights = false)
    {
        if (!Directory.Exists(modelDir))
            throw new ModelException($"model directory not found: {modelDir}");
        var config = CanonicalConfig.Load(Path.Combine(modelDir, "config.json"));
        var weights = WeightStore.OpenDirectory(modelDir);
        ComputeContext? ctx = null;
        try
        {
            var available = weights.Names.ToHashSet(StringComparer.Ordinal);
            weights.Resolver = name => CheckpointNames.Resolve(name, available) ?? name;
            if (bf16Weights) weights.KeepBf16 = Bf16Weights.For(weights);
            ctx = ComputeContext.Create(device);
            var kernelNote = KernelLoader.Apply(ctx, kernels, KernelCatalog.FromAssembly(typeof(Qwen2VLModel).Assembly));
            ParameterSet? parameters = null;
            if (training is not null)
            {
                parameters = new ParameterSet(ctx);
                foreach (var stored in weights.Names.OrderBy(n => n, StringComparer.Ordinal))
                {
                    var name = CheckpointNames.Canonical(stored);
                    bool decay = !(name.EndsWith(".bias", StringComparison.Ordinal) || name.Contains("norm") || name.Contains("ln_q"));
                    parameters.Add(name, weights.Info(name).Shape.Select(d => (int)d).ToArray(), trainable: true, decay: decay);
                }
                foreach (var pattern in training)
                    if (parameters.Freeze(pattern) == 0)
                        throw new ModelException($"--freeze '{pattern}' matches no parameter");
                // bf16 compute: the weights the bf16 GEMMs and row gathers read (Bf16Weights.IsKeptBf16) are held in 16 bits;
                // the rest (norms, biases, the patch conv: generated kernels read f32) get an f32 copy of their rounding.
                parameters.Build(bf16Compute, wide: name => !Bf16Weights.IsKeptBf16(name));
                // The runners bind to the compute weights (the masters themselves unless bf16 compute is on); with bf16
                // compute the checkpoint's values go into the masters, and the compute weights are rounded from them below.
                weights.Destination = name => parameters.ComputeWeight(name);
                if (bf16Compute) weights.ValuesInto = name => parameters.Weight(name);
            }
            var model = new Qwen2VLModel(ctx, config, weights)
            {
                Parameters = parameters, KernelNote = kernelNote, KvCacheBf16 = bf16Weights && ctx.IsCpu,
            };
            if (parameters is { Bf16Compute: true })
                parameters.RoundComputeWeights(); // the checkpoint's values are in the masters; the compute weights are their rounding
            return model;
        }
        catch
        {
            ctx?.Dispose();
            weights.Dispose();
            throw;
        }
    }

    private static long[] ConfigIds(ModelConfig config, string key)
    {
        if (!config.Root.TryGetProperty(key, out var e)) return [];
        return e.ValueKind switch
        {
            System.Text.Json.JsonValueKind.Number => [config.GetInt(key)],
            System.Text.Json.JsonValueKind.Array => config.GetIntArray(key).Select(i => (long)i).ToArray(),
            System.Text.Json.JsonValueKind.Null => [],
            _ => throw new ConfigException($"config.json: key '{key}' must be an integer or a list of integers, got {e.GetRawText()}"),
        };
    }

    /// <summary>Checkpoint tensors the model did not read (stored names): reported as a warning, an error with --strict.</summary>
    public IReadOnlyList<string> UnusedWeights => _weights.UnusedNames;

    /// <summary>The training parameters (null when loaded for inference).</summary>
    public ParameterSet? Parameters { get; private init; }

    public void Dispose()
    {
        Parameters?.Dispose();
        _staging.Dispose();
        Context.Dispose();
        _weights.Dispose();
    }
}
