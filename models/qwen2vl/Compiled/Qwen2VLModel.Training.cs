using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The loss of a training pass and how many label tokens it averaged over; <see cref="LogitsColumns"/> is the width of
/// the widest logits buffer the loss used ([B·S, LogitsColumns] floats: one vocabulary chunk, or the whole vocabulary on
/// the <see cref="Qwen2VLModel.FullLogitsLoss"/> reference path).
/// </summary>
public sealed record TrainingLoss(float Loss, int Tokens)
{
    public int LogitsColumns { get; init; }
}

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// One training pass: the forward of <see cref="Forward"/> on the generated training runners (every value kept, or
    /// with <see cref="Recompute"/> on all but the recomputed ones),
    /// the mean shifted cross-entropy over labels ≠ −100 (spec §9.1), and the backward pass, which adds the gradient
    /// of every trainable parameter into <paramref name="grads"/> under its checkpoint name (tied embeddings: the
    /// lookup's and the head's gradients add into <c>model.embed_tokens.weight</c>). <paramref name="positionIds"/>
    /// overrides the M-RoPE positions (packed rows, whose mask holds segment ids); <paramref name="gradScale"/>
    /// multiplies the gradient of the mean loss (gradient accumulation passes the micro-batch's share of the label tokens).
    /// </summary>
    public TrainingLoss ForwardBackward(ForwardInputs inputs, IGradientSink grads, long[]? positionIds = null, float gradScale = 1f)
    {
        int b = inputs.Batch, s = inputs.Seq;
        if (inputs.Labels is null)
            throw new ModelException("training needs labels (−100 where no token is predicted)");
        if (inputs.Images is not null && inputs.Videos is not null)
            throw new ModelException("a training batch with both images and videos is not supported yet; put them in separate batches");
        if (b <= 0 || s <= 0 || inputs.InputIds.Length != b * s || inputs.Labels.Length != b * s)
            throw new ModelException($"input_ids and labels must be [batch, seq]; got {inputs.InputIds.Length} ids and {inputs.Labels.Length} labels for [{b}, {s}]");
        var mask = inputs.MaskOrOnes();
        HostOps.CheckIds(inputs.InputIds, b, s, Vocab);
        var imageMap = VisionRowMap(inputs.InputIds, TokenIds.Image, inputs.Images, "image");
        var videoMap = VisionRowMap(inputs.InputIds, TokenIds.Video, inputs.Videos, "video");

        // Forward, on the device: the embedding lookup, the vision rows scattered into it in place (the lookup's backward
        // reads only the ids), the layers and the final norm. Only the ids, positions, mask, pixels and labels go in.
        var vision = inputs.Images ?? inputs.Videos;
        var visionMap = imageMap ?? videoMap;
        _visionTrained = vision is not null;
        var visionRows = vision is null ? null : VisionTrain(vision);                                 // [tokens, Hidden]
        var idsT = _staging.UploadInt("ids", ToInt(inputs.InputIds), b, s);
        // A bf16 table (--dtype bf16, train --bf16) is gathered a row at a time and widened; its gradient is f32.
        bool bf16Table = _embed.Table.IsBf16;
        var x = bf16Table ? EmbedTokens(inputs.InputIds, b, s) : _embed.ForwardTrain(idsT);           // [B, S, Hidden]
        _embeddingFloats = (long)b * s * Hidden;
        DeviceTensor? mapT = null;
        if (visionRows is not null)
        {
            mapT = _staging.UploadInt("vision-map", visionMap!, b * s);
            VisionScatter.Scatter(Context, x.Reshape(b * s, Hidden), mapT, visionRows);
        }
        var positions = positionIds ?? RopeIndex.Compute(inputs.InputIds, inputs.AttentionMask, b, s,
            inputs.Images?.Grids ?? [], inputs.Videos?.Grids ?? [], TokenIds, SpatialMerge).PositionIds;
        var posT = _staging.UploadInt("positions", ToInt(positions), 3, b, s);
        var maskT = _staging.UploadInt("mask", ToInt(mask), b, s);
        var h = x.Reshape(b, s, Hidden);
        foreach (var layer in _layers)
            h = layer.ForwardTrain(h, posT, maskT);                                                   // [B, S, Hidden]
        var normed = _norm.ForwardTrain(h);                                                            // [B, S, Hidden]

        // lm_head + loss + their backward, fused and chunked over the vocabulary (no [B·S, V] logits; Qwen2VLModel.HeadLoss.cs).
        var (loss, count, dH, logitsColumns) = HeadLossBackward(normed, inputs.Labels, b, s, grads, gradScale);
        Done(grads, "lm_head.");

        // Backward, in reverse, on the device; IGradientProgress hears each module's prefix as its gradients become final (GradientCompletionOrder).
        dH = _norm.Backward(dH, grads)[0]!;
        Done(grads, "model.norm.");
        for (int i = _layers.Length - 1; i >= 0; i--)
        {
            dH = _layers[i].Backward(dH, grads)[0]!;
            Done(grads, $"model.layers.{i}.");
        }
        var dX = dH.Reshape(b * s, Hidden);
        if (visionRows is not null)
        {
            // The scatter replaced the embeddings of the vision tokens: their gradient goes to the vision tower only
            // (scatter's gradient is the gather of those rows), and the lookup gets none for them.
            var dVision = _staging.View("vision-grad", visionRows.Shape[0], Hidden);
            VisionScatter.GatherAndClear(Context, dX, mapT!, dVision);
            _vision.Backward(dVision, grads);
            Done(grads, "visual.");
        }
        // transformers builds embed_tokens with padding_idx = pad_token_id: the lookup of the pad token gets no gradient.
        if (PadTokenId is { } pad)
            VisionScatter.ClearRowsOf(Context, dX, idsT, checked((int)pad));
        if (!bf16Table)
            _embed.Backward(dX.Reshape(b, s, Hidden), grads);
        else if (grads.GradientOf("model.embed_tokens.weight") is { } dTable)
            Context.ScatterAddRows(dX, idsT, dTable);
        Done(grads, "model.embed_tokens.");
        Context.Synchronize();
        return new TrainingLoss(loss, count) { LogitsColumns = logitsColumns };
    }

    /// <summary>
    /// The checkpoint prefixes whose gradients <see cref="ForwardBackward"/> finalises, in the order it does (the
    /// vision tower only for batches with pixels). With tied embeddings the head writes into the embedding's gradient,
    /// which is final only after <c>model.embed_tokens.</c>.
    /// </summary>
    public IReadOnlyList<string> GradientCompletionOrder =>
        ["lm_head.", "model.norm.", .. Enumerable.Range(0, _layers.Length).Reverse().Select(i => $"model.layers.{i}."), "visual.", "model.embed_tokens."];

    private void Done(IGradientSink grads, string prefix)
    {
        if (grads is not IGradientProgress progress) return;
        Context.Synchronize();
        progress.ModuleDone(prefix);
    }

    /// <summary>
    /// Selective activation checkpointing for <see cref="ForwardBackward"/>: when on, every module's training forward
    /// drops the outputs of the ops its recompute policy covers (<c>[Module(Recompute = …)]</c>, default: norms,
    /// activations, softmax, rotary) and its backward pass recomputes them. Same loss and gradients, fewer kept floats
    /// (<see cref="SavedActivationFloats"/>). Off by default.
    /// </summary>
    public bool Recompute
    {
        get => _recompute;
        set
        {
            _recompute = value;
            _vision.Recompute = value;
            _embed.Recompute = value;
            foreach (var layer in _layers)
                layer.Recompute = value;
            _norm.Recompute = value;
            _head.Recompute = value;
        }
    }

    private bool _recompute;

    /// <summary>
    /// Floats the last <see cref="ForwardBackward"/>'s training forward kept for its backward pass (every module, the
    /// vision tower only when the batch had pixels; the fused loss keeps none), as planned with recomputation on or off, at that batch's dims.
    /// </summary>
    public long SavedActivationFloats(bool recompute) =>
        (_visionTrained ? _vision.SavedActivationFloats(recompute) : 0)
        + (_embed.Table.IsBf16 ? _embeddingFloats : _embed.SavedActivationFloats(recompute))
        + _layers.Sum(l => l.SavedActivationFloats(recompute))
        + _norm.SavedActivationFloats(recompute);
        // No head term: the training loss is the fused chunked lm_head cross-entropy, which keeps no logits between its
        // forward and backward (only per-row statistics); the head runner's own training forward serves the reference path.

    /// <summary>
    /// A gradient sink for this model's parameters (checkpoint names, shapes from the checkpoint); parameters for which
    /// <paramref name="trainable"/> is false get no gradient (frozen).
    /// </summary>
    public GradientMap CreateGradients(Func<string, bool>? trainable = null) =>
        new(Context, trainable, name => _weights.Contains(name) ? _weights.Info(name).Shape.Select(d => (int)d).ToArray() : null);

    /// <summary>The checkpoint shape of a parameter (by its legacy checkpoint name).</summary>
    public int[] ParameterShape(string name) => _weights.Info(name).Shape.Select(d => (int)d).ToArray();

    private DeviceTensor VisionTrain(VisionBatch input)
    {
        var grids = input.Grids.Select(g => (g.T, g.H, g.W)).ToList();
        long patches = input.Grids.Sum(g => (long)g.Patches);
        if (patches != input.Rows || input.Columns != _vision.InDim)
            throw new ModelException($"vision input of {input.Rows}×{input.Columns} does not match its grids ({patches} patches of {_vision.InDim})");
        var pos = VisionGeometry.RotaryPositions(grids, SpatialMerge);
        var cu = VisionGeometry.CuSeqlens(grids);
        // The staging buffers keep them until the next step: the runner saves references to its inputs for the backward pass.
        var pixels = _staging.Upload("pixels", input.PixelValues, input.Rows, input.Columns);
        var posT = _staging.UploadInt("vision-positions", pos, input.Rows, 2);
        var cuT = _staging.UploadInt("cu-seqlens", cu, cu.Length);
        return _vision.ForwardTrain(pixels, posT, cuT);
    }

    private bool _visionTrained;
    private long _embeddingFloats;
}
