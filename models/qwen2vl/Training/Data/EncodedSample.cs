using Qwen2VL.Model.Compiled;

namespace Qwen2VL.Model.Training.Data;

/// <summary>
/// One tokenized training sample: ids and labels of equal length (label −100 = not predicted), and the processor
/// output of its images and videos (null when it has none). <see cref="Source"/> ("file:line") names it in errors.
/// </summary>
public sealed record EncodedSample(long[] Ids, long[] Labels, VisionBatch? Images, VisionBatch? Videos, string? Source = null)
{
    /// <summary>The label of a token the loss skips (PyTorch's <c>ignore_index</c>, Hugging Face's convention).</summary>
    public const long IgnoreIndex = -100;

    public int Length => Ids.Length;
}
