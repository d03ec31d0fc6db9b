using Qwen2VL.Dsl;
using Qwen2VL.Model.Decoder;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;
using static Qwen2VL.Dsl.Ops;

namespace Qwen2VL.Model.Reference;

/// <summary>Pixel rows of all images (or all videos) of a batch, with their grids (spec §3.4).</summary>
public sealed record VisionInput(Tensor PixelValues, IReadOnlyList<GridThw> Grids);

/// <summary>The vision tower's intermediate results: patch embedding, each block's output, merger output.</summary>
public sealed record VisionTrace(Tensor PatchEmbed, Tensor[] Blocks, Tensor Embeds);

/// <summary>Everything one reference forward pass produces (shapes as in the golden fixtures).</summary>
public sealed record ReferenceOutput(
    long[] PositionIds,          // [3, B, S]
    long[] RopeDeltas,           // [B]
    VisionTrace? Images,
    VisionTrace? Videos,
    Tensor[] HiddenStates,       // L + 1 entries of [B, S, Hidden]: embeddings, layer outputs, final-normed last layer
    Tensor LastLayerPrenorm,     // [B, S, Hidden]
    Tensor Logits,               // [B, S, V]
    double? Loss);

/// <summary>
/// The float64 reference of the whole Qwen2-VL model, run on the host by executing the DSL modules as plain C#:
/// vision tower → token embedding with the vision rows scattered in → M-RoPE positions → decoder layers →
/// final RMSNorm → lm_head (spec §5–§7), plus the shifted cross-entropy loss (§9.1). Slow; for tests.
/// </summary>
public sealed partial class ReferenceModel
{
    private ReferenceModel(ConfigView config, VisionTower vision, Tensor embedTokens, DecoderLayer[] layers,
        Tensor finalNorm, Tensor lmHead)
    {
        Config = config;
        Vision = vision;
        EmbedTokens = embedTokens;
        Layers = layers;
        FinalNorm = finalNorm;
        LmHead = lmHead;
        Merge = config.GetInt("vision_config.spatial_merge_size", 2);
        NormEps = (float)config.GetDouble("rms_norm_eps", 1e-6);
        TokenIds = new VisionTokenIds(config.GetInt("vision_start_token_id"), config.GetInt("image_token_id"),
            config.GetInt("video_token_id"));
    }

    public ConfigView Config { get; }
    public VisionTower Vision { get; }
    public Tensor EmbedTokens { get; }       // [V, Hidden]
    public DecoderLayer[] Layers { get; }
    public Tensor FinalNorm { get; }         // [Hidden]
    public Tensor LmHead { get; }            // [V, Hidden] (the embedding table when tied)
    public VisionTokenIds TokenIds { get; }
    public int Merge { get; }
    public float NormEps { get; }

    /// <summary>Loads config.json and the checkpoint (single file or shards, either name spelling) from a directory.</summary>
    public static ReferenceModel Load(string modelDir)
    {
        var config = ConfigView.Load(Path.Combine(modelDir, "config.json"));
        using var store = WeightStore.OpenDirectory(modelDir);
        var available = store.Names.ToHashSet(StringComparer.Ordinal);
        store.Resolver = name => CheckpointNames.Resolve(name, available) ?? name;
        return Create(config, name => store.Contains(name)
            ? (store.Info(name).Shape.Select(d => checked((int)d)).ToArray(), Array.ConvertAll(store.ReadFloat32(name), v => (double)v))
            : null);
    }

    /// <summary>Builds the model from a config and a canonical-name weight source.</summary>
    public static ReferenceModel Create(ConfigView config, Func<string, (int[] Shape, double[] Data)?> weights)
    {
        try
        {
            var vision = ModuleBinder.Create<VisionTower>(config.Lookup, weights, "visual.");
            int layers = config.GetInt("num_hidden_layers");
            var decoder = new DecoderLayer[layers];
            for (int i = 0; i < layers; i++)
                decoder[i] = ModuleBinder.Create<DecoderLayer>(config.Lookup, weights, $"model.layers.{i}.");
            int vocab = config.GetInt("vocab_size"), hidden = config.GetInt("hidden_size");
            var embed = Load(weights, "model.embed_tokens.weight", vocab, hidden);
            var norm = Load(weights, "model.norm.weight", hidden);
            // Tied head (2B): lm_head is the embedding table, whether or not the file also stores a copy.
            var head = config.GetBool("tie_word_embeddings", false) || weights("lm_head.weight") is null
                ? embed
                : Load(weights, "lm_head.weight", vocab, hidden);
            return new ReferenceModel(config, vision, embed, decoder, norm, head);
        }
        catch (ModuleBindingException e)
        {
            throw new WeightException(e.Message, e);
        }
    }

    private static Tensor Load(Func<string, (int[] Shape, double[] Data)?> weights, string name, params int[] shape)
    {
        var w = weights(name) ?? throw new WeightException($"checkpoint tensor '{name}' is missing (expected shape {Tensor.Format(shape)})");
        if (!w.Shape.AsSpan().SequenceEqual(shape))
            throw new WeightException($"checkpoint tensor '{name}' has shape {Tensor.Format(w.Shape)}, expected {Tensor.Format(shape)}");
        return new Tensor(w.Shape, w.Data);
    }

    /// <summary>Runs the vision tower on one packed batch of images or videos, keeping every stage (spec §5).</summary>
    public VisionTrace EncodeVision(VisionInput input)
    {
        var px = input.PixelValues;
        int n = input.Grids.Sum(g => g.Patches);
        if (px.Rank != 2 || px.Shape[0] != n || px.Shape[1] != Vision.InDim)
            throw new ModelException($"pixel values have shape {Tensor.Format(px.Shape)}, the grids need [{n}, {Vision.InDim}]");
        var pos = Tensor.FromInt64(ReferenceVisionGeometry.PatchPositions(input.Grids, Merge), n, 2);     // [N, 2]
        var cu = ReferenceVisionGeometry.CuSeqlens(input.Grids);
        var cuSeqlens = Tensor.FromInt64(cu, cu.Length);                                               // [G]

        // The same steps as VisionTower.Forward, one at a time so that each stage can be compared.
        var x = Linear(px, Reshape(Vision.PatchW, Vision.Embed, -1));                                   // [N, Embed]
        var patchEmbed = x;
        var blocks = new Tensor[Vision.Blocks.Length];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = x = Vision.Blocks[i].Forward(x, pos, cuSeqlens);
        return new VisionTrace(patchEmbed, blocks, Vision.Merger.Forward(x));                          // [N/4, Hidden]
    }

    /// <summary>
    /// One forward pass over a padded batch. <paramref name="labels"/> [B, S] (−100 = ignored) adds the loss.
    /// </summary>
    public ReferenceOutput Forward(long[] inputIds, long[]? attentionMask, int batch, int seq,
        VisionInput? images = null, VisionInput? videos = null, long[]? labels = null)
    {
        var mask = attentionMask ?? Enumerable.Repeat(1L, batch * seq).ToArray();
        var imageTrace = images is null ? null : EncodeVision(images);
        var videoTrace = videos is null ? null : EncodeVision(videos);
        var embeds = Embed(inputIds, batch, seq, imageTrace?.Embeds, videoTrace?.Embeds);               // [B, S, Hidden]
        var (positions, deltas) = RopeIndex.Compute(inputIds, attentionMask, batch, seq,
            images?.Grids ?? [], videos?.Grids ?? [], TokenIds, Merge);
        var (hidden, prenorm) = Decode(embeds, positions, mask, batch, seq);
        var logits = Linear(hidden[^1], LmHead);                                                       // [B, S, V]
        double? loss = labels is null ? null : CrossEntropy.ShiftedMean(logits, labels);
        return new ReferenceOutput(positions, deltas, imageTrace, videoTrace, hidden, prenorm, logits, loss);
    }

    /// <summary>
    /// Token embeddings with the image / video token rows replaced, in order over the flattened [B·S] ids, by the
    /// vision embeddings (masked scatter, spec §7.1).
    /// </summary>
    public Tensor Embed(long[] inputIds, int batch, int seq, Tensor? imageEmbeds, Tensor? videoEmbeds)
    {
        var x = Embedding(Tensor.FromInt64(inputIds, batch, seq), EmbedTokens);                        // [B, S, Hidden]
        Scatter(x, inputIds, TokenIds.Image, imageEmbeds, "image");
        Scatter(x, inputIds, TokenIds.Video, videoEmbeds, "video");
        return x;
    }

    private static void Scatter(Tensor x, long[] ids, long tokenId, Tensor? rows, string kind)
    {
        int hidden = x.Shape[^1];
        int tokens = ids.Count(id => id == tokenId), available = rows?.Shape[0] ?? 0;
        if (tokens != available)
            throw new ModelException($"input_ids hold {tokens} {kind} tokens but the vision tower produced {available} {kind} embeddings");
        if (rows is null) return;
        if (rows.Shape[1] != hidden)
            throw new ModelException($"{kind} embeddings have width {rows.Shape[1]}, the decoder expects {hidden}");
        int next = 0;
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] == tokenId)
                Array.Copy(rows.Data, (long)next++ * hidden, x.Data, (long)i * hidden, hidden);
    }

    /// <summary>Decoder layers, capturing HF's hidden_states: embeddings, each layer but the last, final norm.</summary>
    private (Tensor[] Hidden, Tensor Prenorm) Decode(Tensor x, long[] positions, long[] mask, int batch, int seq)
    {
        var pos = Tensor.FromInt64(positions, 3, batch, seq);
        var m = Tensor.FromInt64(mask, batch, seq);
        var hidden = new Tensor[Layers.Length + 1];
        hidden[0] = x;
        for (int i = 0; i < Layers.Length; i++)
        {
            x = Layers[i].Forward(x, pos, m);                                                          // [B, S, Hidden]
            if (i + 1 < Layers.Length) hidden[i + 1] = x;
        }
        hidden[^1] = RmsNorm(x, FinalNorm, NormEps);
        return (hidden, x);
    }
}
