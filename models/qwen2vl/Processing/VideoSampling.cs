namespace Qwen2VL.Model.Processing;

/// <summary>
/// qwen-vl-utils v0.0.8 frame sampling and per-frame size for decoded videos (spec §3.5): how many frames,
/// which ones, and what size each sampled frame is resized to.
/// </summary>
public static class VideoSampling
{
    /// <summary>
    /// <c>smart_nframes</c>: an even frame count in [2, totalFrames]. With <c>nframes</c> it is that number
    /// rounded to even; otherwise totalFrames / videoFps · fps clamped to [min_frames, max_frames] and rounded
    /// to even (Python round, half to even).
    /// </summary>
    public static int SmartNFrames(int totalFrames, double videoFps, VideoOptions options, string name = "video")
    {
        const int factor = VideoOptions.FrameFactor;
        if (options.Fps is not null && options.NFrames is not null)
            throw new PreprocessingException($"{name}: give either fps or nframes, not both");
        double n;
        if (options.NFrames is int requested)
        {
            n = Math.Round((double)requested / factor) * factor;
        }
        else
        {
            if (!(videoFps > 0) || double.IsInfinity(videoFps))
                throw new PreprocessingException($"{name}: frame rate {videoFps} is not a positive number");
            double fps = options.Fps ?? VideoOptions.DefaultFps;
            if (!(fps > 0))
                throw new PreprocessingException($"{name}: fps must be positive, got {fps}");
            double minFrames = Math.Ceiling((double)(options.MinFrames ?? VideoOptions.DefaultMinFrames) / factor) * factor;
            double maxFrames = Math.Floor((double)(options.MaxFrames ?? Math.Min(VideoOptions.DefaultMaxFrames, totalFrames)) / factor) * factor;
            n = totalFrames / videoFps * fps;
            n = Math.Min(Math.Max(n, minFrames), maxFrames);
            n = Math.Round(n / factor) * factor;
        }
        if (!(factor <= n && n <= totalFrames))
            throw new PreprocessingException(
                $"{name}: cannot sample {n} frames, the count must lie in [{factor}, {totalFrames}] (the video has {totalFrames} frames)");
        return (int)n;
    }

    /// <summary>
    /// <c>torch.linspace(0, total−1, n).round()</c>: float32 linspace as PyTorch's CPU kernel computes it
    /// (the first half counts up from the start, the second half down from the end), then round half to even.
    /// Older PyTorch releases had a vectorised variant (base + k·step per 8 lanes) that can differ in the last
    /// float bit; that matters only where a value falls within one float ulp of a .5 boundary.
    /// </summary>
    public static int[] FrameIndices(int totalFrames, int nFrames)
    {
        if (nFrames < 2 || totalFrames < 1)
            throw new PreprocessingException($"cannot pick {nFrames} frames out of {totalFrames}");
        float start = 0f, end = totalFrames - 1;
        // Explicit (float) casts pin every intermediate to single precision, as in the C++ kernel.
        float step = (float)((end - start) / (nFrames - 1));
        int halfway = nFrames / 2;
        var indices = new int[nFrames];
        for (int i = 0; i < nFrames; i++)
        {
            float v = i < halfway ? (float)(start + (float)(step * i)) : (float)(end - (float)(step * (nFrames - i - 1)));
            indices[i] = (int)MathF.Round(v, MidpointRounding.ToEven);
        }
        return indices;
    }

    /// <summary>
    /// Per-frame max_pixels: max(min(VIDEO_MAX_PIXELS, total_pixels / n · 2), int(min_pixels · 1.05)),
    /// unless the options set max_pixels explicitly.
    /// </summary>
    public static double FrameMaxPixels(int nFrames, VideoOptions options) =>
        options.MaxPixels ?? Math.Max(
            Math.Min(VideoOptions.DefaultMaxPixels, options.TotalPixels / nFrames * VideoOptions.FrameFactor),
            Math.Truncate(options.MinPixels * 1.05));

    /// <summary>The (height, width) every sampled frame is resized to (qwen-vl-utils smart_resize).</summary>
    public static (int Height, int Width) FrameSize(int height, int width, int nFrames, VideoOptions options, string name = "video")
    {
        try
        {
            if (ExplicitSize(options.ResizedHeight, options.ResizedWidth, name) is var (rh, rw))
                return SmartResize.ComputeQwenVlUtils(rh, rw, 28, ImageFetchOptions.DefaultMinPixels, ImageFetchOptions.DefaultMaxPixels);
            return SmartResize.ComputeQwenVlUtils(height, width, 28, options.MinPixels, FrameMaxPixels(nFrames, options));
        }
        catch (PreprocessingException e) when (!e.Message.StartsWith(name, StringComparison.Ordinal))
        {
            throw new PreprocessingException($"{name}: {e.Message}", e);
        }
    }

    /// <summary>resized_height / resized_width must come together and be positive.</summary>
    internal static (int Height, int Width)? ExplicitSize(int? height, int? width, string name)
    {
        if (height is null && width is null) return null;
        if (height is not int h || width is not int w)
            throw new PreprocessingException($"{name}: resized_height and resized_width must be given together");
        if (h <= 0 || w <= 0)
            throw new PreprocessingException($"{name}: resized size {h}x{w} must be positive");
        return (h, w);
    }
}
