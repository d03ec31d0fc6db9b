namespace Qwen2VL.Model.Training.Data;

/// <summary>One turn of a training conversation; <see cref="Content"/> may hold <c>&lt;image&gt;</c> / <c>&lt;video&gt;</c> placeholders.</summary>
public sealed record TrainingMessage(string Role, string Content);

/// <summary>
/// A video of a training sample: either a list of frame image files (<see cref="IsFrameList"/>) or one animated GIF
/// (a single path). Paths are absolute (resolved against the JSONL file's folder when read).
/// </summary>
public sealed record TrainingVideo(IReadOnlyList<string> Paths, bool IsFrameList);

/// <summary>
/// One line of a training JSONL file: images and videos in the order their placeholders appear in the messages,
/// and the conversation. <see cref="Source"/> is "file:line" so later errors (a missing image, a sample too long to
/// pack) can still name the line.
/// </summary>
public sealed record TrainingSample(
    IReadOnlyList<string> Images,
    IReadOnlyList<TrainingVideo> Videos,
    IReadOnlyList<TrainingMessage> Messages,
    string Source)
{
    public const string ImagePlaceholder = "<image>";
    public const string VideoPlaceholder = "<video>";
}
