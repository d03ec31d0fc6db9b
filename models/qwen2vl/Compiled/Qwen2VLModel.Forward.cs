using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// One forward pass over a padded batch: vision tower → embeddings with the vision rows scattered in → M-RoPE
    /// positions → decoder layers → final norm → logits, plus the loss when labels are given. Everything it returns is
    /// an output the forward command writes (hidden states, vision embeddings, logits), so all of it is downloaded.
    /// </summary>
    public ForwardOutput Forward(ForwardInputs inputs)
    {
        var batch = Embed(inputs, downloadVision: true);
        var hidden = new List<float[]> { Context.Download(batch.Embeddings) };
        var normed = RunDecoder(batch.Embeddings, batch.PositionIds, batch.AttentionMask, batch.Batch, batch.Seq, hidden);
        int b = batch.Batch, s = batch.Seq;
        var logits = Context.Download(_head.Forward(normed.Reshape(b * s, Hidden)));                 // [B·S, V]
        float? loss = inputs.Labels is null ? null : HostOps.ShiftedCrossEntropy(logits, inputs.Labels, b, s, Vocab);
        return new ForwardOutput(b, s, Hidden, Vocab, batch.PositionIds, batch.RopeDeltas, batch.ImageEmbeds,
            batch.VideoEmbeds, hidden, logits, loss);
    }

    /// <summary>
    /// Everything before the decoder layers (spec §7.1, §6.1): checks the inputs, runs the vision tower on the
    /// images and videos, looks up the token embeddings and scatters the vision rows in, all on the device, and
    /// computes the positions. The embeddings stay on the device (valid until the next call that embeds tokens).
    /// </summary>
    public EmbeddedBatch Embed(ForwardInputs inputs) => Embed(inputs, downloadVision: false);

    private EmbeddedBatch Embed(ForwardInputs inputs, bool downloadVision)
    {
        int b = inputs.Batch, s = inputs.Seq;
        if (b <= 0 || s <= 0 || inputs.InputIds.Length != b * s)
            throw new ModelException($"input_ids must be [batch, seq] with batch, seq ≥ 1; got {inputs.InputIds.Length} ids for [{b}, {s}]");
        CheckSameShape(inputs.AttentionMask, "attention_mask", b, s);
        CheckSameShape(inputs.Labels, "labels", b, s);
        var mask = inputs.MaskOrOnes();
        HostOps.CheckMask(mask, s);
        HostOps.CheckIds(inputs.InputIds, b, s, Vocab);
        CheckVision(inputs.Images, "image", "pixel_values", "image_grid_thw");
        CheckVision(inputs.Videos, "video", "pixel_values_videos", "video_grid_thw");
        var imageMap = VisionRowMap(inputs.InputIds, TokenIds.Image, inputs.Images, "image");
        var videoMap = VisionRowMap(inputs.InputIds, TokenIds.Video, inputs.Videos, "video");

        // The vision tower's output lives in its runner until the next vision call: scatter the images before the videos run.
        var x = EmbedTokens(inputs.InputIds, b, s).Reshape(b * s, Hidden);
        float[]? imageRows = null, videoRows = null;
        if (inputs.Images is { } images)
            imageRows = ScatterVision(x, EncodeVision(images), imageMap!, "image", downloadVision);
        if (inputs.Videos is { } videos)
            videoRows = ScatterVision(x, EncodeVision(videos), videoMap!, "video", downloadVision);
        var (positions, deltas) = RopeIndex.Compute(inputs.InputIds, inputs.AttentionMask, b, s,
            inputs.Images?.Grids ?? [], inputs.Videos?.Grids ?? [], TokenIds, SpatialMerge);
        return new EmbeddedBatch(b, s, x.Reshape(b, s, Hidden), positions, deltas, mask, imageRows, videoRows);
    }

    /// <summary>
    /// Embedding rows [B, S, Hidden] of the ids, gathered on the device by the generated lookup (the ids are the only
    /// bytes uploaded). The result lives in the embedding runner until its next call. With a bf16 table
    /// (<c>--dtype bf16</c>) the rows are widened as they are gathered (the table itself stays bf16) into a buffer of
    /// this model, likewise valid until the next call.
    /// </summary>
    public DeviceTensor EmbedTokens(long[] ids, int batch, int seq)
    {
        HostOps.CheckIds(ids, batch, seq, Vocab);
        if (_embed.Table.IsBf16)
        {
            int length = batch * seq * Hidden;
            if (_bf16Embeddings is null || _bf16Embeddings.Length < length)
            {
                _bf16Embeddings?.Dispose();
                _bf16Embeddings = Context.Allocate(Math.Max(length, 1));
            }
            var rows = _bf16Embeddings.Slice(0, length, batch, seq, Hidden);
            Context.GatherBf16Rows(_embed.Table, ToInt(ids), rows);
            return rows;
        }
        var idsT = _staging.UploadInt("ids", ToInt(ids), batch, seq);
        return _embed.Forward(idsT);
    }

    private DeviceTensor? _bf16Embeddings;

    /// <summary>
    /// The decoder layers and the final norm; returns the normed states [B, S, Hidden] (valid until the next call).
    /// When <paramref name="hidden"/> is given, appends HF's hidden_states after the embeddings: each layer's
    /// output but the last, then the final-normed last layer.
    /// </summary>
    private DeviceTensor RunDecoder(DeviceTensor embeddings, long[] positions, long[] mask, int batch, int seq, List<float[]>? hidden)
    {
        var pos = _staging.UploadInt("positions", ToInt(positions), 3, batch, seq);
        var m = _staging.UploadInt("mask", ToInt(mask), batch, seq);
        var h = embeddings.Reshape(batch, seq, Hidden);
        for (int i = 0; i < _layers.Length; i++)
        {
            h = _layers[i].Forward(h, pos, m);                                                        // [B, S, Hidden]
            if (hidden is not null && i + 1 < _layers.Length) hidden.Add(Context.Download(h));
        }
        var normed = _norm.Forward(h);                                                              // [B, S, Hidden]
        hidden?.Add(Context.Download(normed));
        return normed;
    }

    /// <summary>
    /// The row map of one vision kind (see <see cref="VisionScatter"/>) after checking that the ids hold as many of its
    /// tokens as its grids give merged rows; null when the batch has none of that kind.
    /// </summary>
    private int[]? VisionRowMap(long[] ids, long tokenId, VisionBatch? input, string kind)
    {
        int available = input is null ? 0 : input.Grids.Sum(g => g.T * (g.H / SpatialMerge) * (g.W / SpatialMerge));
        var map = input is null ? null : new int[ids.Length];
        int tokens = map is null ? ids.Count(id => id == tokenId) : VisionScatter.RowMap(ids, tokenId, map);
        if (tokens != available)
            throw new ModelException($"input_ids hold {tokens} {kind} tokens (id {tokenId}) but the {kind}s give {available} {kind} embeddings");
        return map;
    }

    /// <summary>Scatters vision rows [N, Hidden] into x [B·S, Hidden] on the device; downloads them only when asked.</summary>
    private float[]? ScatterVision(DeviceTensor x, DeviceTensor rows, int[] map, string kind, bool download)
    {
        var mapT = _staging.UploadInt(kind + "-map", map, map.Length);
        VisionScatter.Scatter(Context, x, mapT, rows);
        return download ? Context.Download(rows) : null;
    }

    /// <summary>Checks one vision input against its grids and the tower's patch size.</summary>
    private void CheckVision(VisionBatch? input, string kind, string pixelsName, string gridName)
    {
        if (input is null) return;
        if (input.Grids.Count == 0)
            throw new ModelException($"{gridName} is empty but {pixelsName} has {input.Rows} rows");
        foreach (var g in input.Grids)
            if (g.T <= 0 || g.H <= 0 || g.W <= 0 || g.H % SpatialMerge != 0 || g.W % SpatialMerge != 0)
                throw new ModelException($"{gridName} row ({g.T}, {g.H}, {g.W}) is invalid: sizes must be positive and h, w multiples of {SpatialMerge}");
        long patches = input.Grids.Sum(g => (long)g.Patches);
        if (patches != input.Rows)
            throw new ModelException($"{gridName} covers {patches} patches but {pixelsName} has {input.Rows} rows");
        if (input.Columns != _vision.InDim)
            throw new ModelException($"{pixelsName} has {input.Columns} columns, the vision tower expects {_vision.InDim} (channels · temporal patch · patch²)");
        if (input.PixelValues.Length != (long)input.Rows * input.Columns)
            throw new ModelException($"{pixelsName} holds {input.PixelValues.Length} values, not {input.Rows} · {input.Columns}");
    }

    /// <summary>The vision tower on all images (or videos) of the batch: rows [tokens, Hidden] on the device, in its runner.</summary>
    private DeviceTensor EncodeVision(VisionBatch input)
    {
        var grids = input.Grids.Select(g => (g.T, g.H, g.W)).ToList();
        var pos = VisionGeometry.RotaryPositions(grids, SpatialMerge);
        var cu = VisionGeometry.CuSeqlens(grids);
        var pixels = _staging.Upload("pixels", input.PixelValues, input.Rows, input.Columns);
        var posT = _staging.UploadInt("vision-positions", pos, input.Rows, 2);
        var cuT = _staging.UploadInt("cu-seqlens", cu, cu.Length);
        return _vision.Forward(pixels, posT, cuT);                                                   // [N/4, Hidden]
    }

    private static void CheckSameShape(long[]? values, string name, int batch, int seq)
    {
        if (values is not null && values.Length != batch * seq)
            throw new ModelException($"{name} holds {values.Length} values, input_ids is [{batch}, {seq}]");
    }

    private static int[] ToInt(long[] values)
    {
        var result = new int[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = checked((int)values[i]);
        return result;
    }
}
