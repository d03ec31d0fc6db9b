using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// One forward pass over a padded batch: vision tower → embeddings with the vision rows scattered in → M-RoPE
    /// positions → decoder layers → final norm → logits, plus the loss when labels are given.
    /// </summary>
    public ForwardOutput Forward(ForwardInputs inputs)
    {
        var batch = Embed(inputs);
        var hidden = new List<float[]> { batch.Embeddings };
        var normed = RunDecoder(batch.Embeddings, batch.PositionIds, batch.AttentionMask, batch.Batch, batch.Seq, hidden);
        int b = batch.Batch, s = batch.Seq;
        var logits = Context.Download(_head.Forward(normed.Reshape(b * s, Hidden)));                 // [B·S, V]
        float? loss = inputs.Labels is null ? null : HostOps.ShiftedCrossEntropy(logits, inputs.Labels, b, s, Vocab);
        return new ForwardOutput(b, s, Hidden, Vocab, batch.PositionIds, batch.RopeDeltas, batch.ImageEmbeds,
            batch.VideoEmbeds, hidden, logits, loss);
    }

    /// <summary>
    /// Everything before the decoder layers (spec §7.1, §6.1): checks the inputs, runs the vision tower on the
    /// images and videos, looks up the token embeddings, scatters the vision rows in and computes the positions.
    /// </summary>
    public EmbeddedBatch Embed(ForwardInputs inputs)
    {
        int b = inputs.Batch, s = inputs.Seq;
        if (b <= 0 || s <= 0 || inputs.InputIds.Length != b * s)
            throw new ModelException($"input_ids must be [batch, seq] with batch, seq ≥ 1; got {inputs.InputIds.Length} ids for [{b}, {s}]");
        CheckSameShape(inputs.AttentionMask, "attention_mask", b, s);
        CheckSameShape(inputs.Labels, "labels", b, s);
        var mask = inputs.MaskOrOnes();
        HostOps.CheckMask(mask, s);
        HostOps.CheckIds(inputs.InputIds, b, s, Vocab);

        var images = EncodeVision(inputs.Images, "image", "pixel_values", "image_grid_thw");
        var videos = EncodeVision(inputs.Videos, "video", "pixel_values_videos", "video_grid_thw");
        var x = EmbedTokens(inputs.InputIds, b, s);
        HostOps.Scatter(x, inputs.InputIds, TokenIds.Image, images, Hidden, "image");
        HostOps.Scatter(x, inputs.InputIds, TokenIds.Video, videos, Hidden, "video");
        var (positions, deltas) = RopeIndex.Compute(inputs.InputIds, inputs.AttentionMask, b, s,
            inputs.Images?.Grids ?? [], inputs.Videos?.Grids ?? [], TokenIds, SpatialMerge);
        return new EmbeddedBatch(b, s, x, positions, deltas, mask, images, videos);
    }

    /// <summary>
    /// Embedding rows [B·S, Hidden] of already checked ids: the generated gather on the device, or with a bf16 table
    /// (<c>--dtype bf16</c>) the rows widened as they are gathered (the table itself stays bf16).
    /// </summary>
    public float[] EmbedTokens(long[] ids, int batch, int seq)
    {
        HostOps.CheckIds(ids, batch, seq, Vocab);
        if (_embed.Table.IsBf16) return Context.GatherBf16Rows(_embed.Table, ToInt(ids));
        using var idsT = Context.UploadInt(ToInt(ids), batch, seq);
        return Context.Download(_embed.Forward(idsT));
    }

    /// <summary>
    /// The logits [B, Vocab] at the last position of each row: decoder layers over the whole sequence, final norm,
    /// and the lm_head on the B last rows only (what a generation step needs).
    /// </summary>
    public float[] LastPositionLogits(float[] embeddings, long[] positions, long[] mask, int batch, int seq)
    {
        var normed = Context.Download(RunDecoder(embeddings, positions, mask, batch, seq, hidden: null));
        var last = new float[batch * Hidden];
        for (int b = 0; b < batch; b++)
            Array.Copy(normed, ((long)b * seq + seq - 1) * Hidden, last, (long)b * Hidden, Hidden);
        using var lastT = Context.Upload(last, batch, Hidden);
        return Context.Download(_head.Forward(lastT));
    }

    /// <summary>
    /// The decoder layers and the final norm; returns the normed states [B, S, Hidden] (valid until the next call).
    /// When <paramref name="hidden"/> is given, appends HF's hidden_states after the embeddings: each layer's
    /// output but the last, then the final-normed last layer.
    /// </summary>
    private DeviceTensor RunDecoder(float[] embeddings, long[] positions, long[] mask, int batch, int seq, List<float[]>? hidden)
    {
        using var x = Context.Upload(embeddings, batch, seq, Hidden);
        using var pos = Context.UploadInt(ToInt(positions), 3, batch, seq);
        using var m = Context.UploadInt(ToInt(mask), batch, seq);
        var h = x;
        for (int i = 0; i < _layers.Length; i++)
        {
            h = _layers[i].Forward(h, pos, m);                                                        // [B, S, Hidden]
            if (hidden is not null && i + 1 < _layers.Length) hidden.Add(Context.Download(h));
        }
        var normed = _norm.Forward(h);                                                              // [B, S, Hidden]
        hidden?.Add(Context.Download(normed));
        Context.Synchronize(); // the uploads are freed on return; queued kernels must be done with them
        return normed;
    }

    /// <summary>The vision tower on all images (or videos) of the batch: rows [tokens, Hidden], or null when none.</summary>
    private float[]? EncodeVision(VisionBatch? input, string kind, string pixelsName, string gridName)
    {
        if (input is null) return null;
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

        var grids = input.Grids.Select(g => (g.T, g.H, g.W)).ToList();
        var pos = VisionGeometry.RotaryPositions(grids, SpatialMerge);
        var cu = VisionGeometry.CuSeqlens(grids);
        using var pixels = Context.Upload(input.PixelValues, input.Rows, input.Columns);
        using var posT = Context.UploadInt(pos, input.Rows, 2);
        using var cuT = Context.UploadInt(cu, cu.Length);
        return Context.Download(_vision.Forward(pixels, posT, cuT));                                 // [N/4, Hidden]
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
