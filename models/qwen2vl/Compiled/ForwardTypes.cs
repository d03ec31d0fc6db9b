using Qwen2VL.Model.Reference;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The processor output for all images (or all videos) of a batch: patch rows [Rows, Columns] (spec §3.4) and one
/// grid per item in order of appearance.
/// </summary>
public sealed record VisionBatch(float[] PixelValues, int Rows, int Columns, IReadOnlyList<GridThw> Grids);

/// <summary>
/// One padded batch for <see cref="Qwen2VLModel.Forward"/>: ids [Batch, Seq], attention mask [Batch, Seq] (1 = real
/// token, 0 = padding; null = all real), optional images / videos and labels [Batch, Seq] (−100 = ignored).
/// </summary>
public sealed record ForwardInputs(
    long[] InputIds,
    int Batch,
    int Seq,
    long[]? AttentionMask = null,
    VisionBatch? Images = null,
    VisionBatch? Videos = null,
    long[]? Labels = null)
{
    /// <summary>The attention mask, or all ones when none was given.</summary>
    public long[] MaskOrOnes() => AttentionMask ?? Enumerable.Repeat(1L, Batch * Seq).ToArray();
}

/// <summary>
/// What one forward pass produces, in the layouts of the golden fixtures: position ids [3, B, S], rope deltas [B],
/// vision embeddings [tokens, Hidden], hidden states (L + 1 entries of [B, S, Hidden]: the embeddings after the vision
/// scatter, each layer's output but the last, and the final-normed last layer), logits [B, S, Vocab] and the loss.
/// </summary>
public sealed record ForwardOutput(
    int Batch,
    int Seq,
    int Hidden,
    int Vocab,
    long[] PositionIds,
    long[] RopeDeltas,
    float[]? ImageEmbeds,
    float[]? VideoEmbeds,
    IReadOnlyList<float[]> HiddenStates,
    float[] Logits,
    float? Loss);

/// <summary>
/// A batch ready for the decoder: input embeddings [B, S, Hidden] with the vision rows scattered in (on the device,
/// valid until the model next embeds tokens), M-RoPE positions [3, B, S], rope deltas [B] and the attention mask
/// [B, S]; what generation extends step by step. The vision embeddings are downloaded only by
/// <see cref="Qwen2VLModel.Forward"/> (its outputs), else null.
/// </summary>
public sealed record EmbeddedBatch(
    int Batch,
    int Seq,
    Qwen2VL.Runtime.DeviceTensor Embeddings,
    long[] PositionIds,
    long[] RopeDeltas,
    long[] AttentionMask,
    float[]? ImageEmbeds,
    float[]? VideoEmbeds);
