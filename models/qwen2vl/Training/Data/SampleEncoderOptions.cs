using Qwen2VL.Model.Processing;

namespace Qwen2VL.Model.Training.Data;

/// <summary>How <see cref="SampleEncoder"/> turns samples into tokens.</summary>
public sealed record SampleEncoderOptions
{
    /// <summary>Overrides the preprocessor's min_pixels / max_pixels (the usual knob to bound vision tokens per image).</summary>
    public int? MinPixels { get; init; }

    public int? MaxPixels { get; init; }

    /// <summary>Frame sampling for GIF videos (frame-list videos keep every frame).</summary>
    public VideoOptions? Video { get; init; }

    /// <summary>
    /// Also supervise the "\n" that follows each assistant <c>&lt;|im_end|&gt;</c>. Off by default: generation stops at
    /// <c>&lt;|im_end|&gt;</c>, so that newline is never produced and teaches nothing. LLaMA-Factory's qwen2_vl
    /// template (assistant format "{{content}}&lt;|im_end|&gt;\n") and Qwen's own fine-tuning script (the whole
    /// assistant turn minus its 3 header tokens) do supervise it; set this to match them exactly.
    /// </summary>
    public bool SuperviseNewlineAfterImEnd { get; init; }
}
