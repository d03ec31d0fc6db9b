namespace Qwen2VL.Model.Processing;

/// <summary>
/// Per-image options of qwen-vl-utils' <c>fetch_image</c> (spec §3.1 defaults table): pixel bounds for
/// smart_resize, or an explicit size that is itself only rounded by smart_resize.
/// </summary>
public sealed record ImageFetchOptions
{
    /// <summary>qwen-vl-utils MIN_PIXELS = 4·28².</summary>
    public const int DefaultMinPixels = 4 * 28 * 28;
    /// <summary>qwen-vl-utils MAX_PIXELS = 16384·28².</summary>
    public const int DefaultMaxPixels = 16384 * 28 * 28;

    public double MinPixels { get; init; } = DefaultMinPixels;
    public double MaxPixels { get; init; } = DefaultMaxPixels;
    /// <summary>Both or neither: an explicit target size (rounded to multiples of 28 with the default bounds).</summary>
    public int? ResizedHeight { get; init; }
    public int? ResizedWidth { get; init; }
}

/// <summary>
/// Per-video options of qwen-vl-utils v0.0.8 <c>fetch_video</c> (spec §3.5). <see cref="Fps"/> and
/// <see cref="NFrames"/> are mutually exclusive; null means the library default.
/// </summary>
public sealed record VideoOptions
{
    public const double DefaultFps = 2.0;
    public const int FrameFactor = 2;
    public const int DefaultMinFrames = 4;
    public const int DefaultMaxFrames = 768;
    public const int DefaultMinPixels = 128 * 28 * 28;
    public const int DefaultMaxPixels = 768 * 28 * 28;
    public const int DefaultTotalPixels = 24576 * 28 * 28;

    /// <summary>Frames to sample per second of video (default 2).</summary>
    public double? Fps { get; init; }
    /// <summary>Exact number of frames to sample (rounded to an even count).</summary>
    public int? NFrames { get; init; }
    public int? MinFrames { get; init; }
    public int? MaxFrames { get; init; }
    public double MinPixels { get; init; } = DefaultMinPixels;
    /// <summary>Per-frame pixel cap; null = the budget computed from <see cref="TotalPixels"/> and the frame count.</summary>
    public double? MaxPixels { get; init; }
    public double TotalPixels { get; init; } = DefaultTotalPixels;
    /// <summary>Both or neither: an explicit frame size, which bypasses the pixel budget.</summary>
    public int? ResizedHeight { get; init; }
    public int? ResizedWidth { get; init; }
}
