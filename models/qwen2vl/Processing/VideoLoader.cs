using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.PixelFormats;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Processing;

/// <summary>
/// Turns a video given as frame files or as an animated GIF into the list of uint8 frames the processor takes,
/// the way qwen-vl-utils v0.0.8 <c>fetch_video</c> does (spec §3.5). Resizing uses Pillow bicubic throughout;
/// for decoded videos qwen-vl-utils resizes with torchvision (antialiased bicubic on tensors), which can differ
/// by a few uint8 levels.
/// </summary>
public static class VideoLoader
{
    /// <summary>GIF frame rate assumed when the file gives no frame delays (browsers show such frames for 0.1 s).</summary>
    public const double FallbackGifFps = 10.0;

    /// <summary>
    /// A video as a list of image files: each frame goes through qwen-vl-utils <c>fetch_image</c> (its own
    /// smart_resize, Pillow bicubic), no frames are dropped, and the last frame is repeated to an even count.
    /// </summary>
    public static IReadOnlyList<RgbImage> LoadFrameFiles(IReadOnlyList<string> paths, ImageFetchOptions? options = null,
        long maxPixelsPerFrame = RgbImage.DefaultMaxDecodePixels)
    {
        if (paths.Count == 0)
            throw new PreprocessingException("a video needs at least one frame file");
        var frames = paths.Select(p => FetchImage(RgbImage.Load(p, maxPixelsPerFrame), options ?? new())).ToList();
        while (frames.Count % VideoOptions.FrameFactor != 0)
            frames.Add(frames[^1]);
        return frames;
    }

    /// <summary>qwen-vl-utils <c>fetch_image</c> after decoding: smart_resize (its variant) then Pillow bicubic.</summary>
    public static RgbImage FetchImage(RgbImage image, ImageFetchOptions options)
    {
        (int Height, int Width) size;
        try
        {
            size = VideoSampling.ExplicitSize(options.ResizedHeight, options.ResizedWidth, image.Name) is var (rh, rw)
                ? SmartResize.ComputeQwenVlUtils(rh, rw, 28, ImageFetchOptions.DefaultMinPixels, ImageFetchOptions.DefaultMaxPixels)
                : SmartResize.ComputeQwenVlUtils(image.Height, image.Width, 28, options.MinPixels, options.MaxPixels);
        }
        catch (PreprocessingException e) when (!e.Message.StartsWith(image.Name, StringComparison.Ordinal))
        {
            throw new PreprocessingException($"{image.Name}: {e.Message}", e);
        }
        return PillowResize.Bicubic(image, size.Width, size.Height);
    }

    /// <summary>
    /// Samples already decoded frames (all of one size) at the qwen-vl-utils rate and resizes the chosen ones
    /// to the per-frame pixel budget.
    /// </summary>
    public static IReadOnlyList<RgbImage> Sample(IReadOnlyList<RgbImage> frames, double videoFps, VideoOptions? options = null,
        string name = "video")
    {
        if (frames.Count == 0)
            throw new PreprocessingException($"{name} has no frames");
        return SampleFrames(frames.Count, videoFps, frames[0].Height, frames[0].Width, i => frames[i], options ?? new(), name);
    }

    /// <summary>
    /// An animated GIF as a video: frames composited by ImageSharp, frame rate = frames / total display time
    /// (from the per-frame delays), then <see cref="Sample"/>. Only the sampled frames are copied out.
    /// </summary>
    public static IReadOnlyList<RgbImage> LoadGif(string path, VideoOptions? options = null,
        long maxPixelsPerFrame = RgbImage.DefaultMaxDecodePixels)
    {
        if (File.Exists(path)) InputFile.RequireRegular(path, $"'{path}'"); // a FIFO would block the decoder forever
        try
        {
            if (!File.Exists(path))
                throw new PreprocessingException($"image file '{path}' does not exist");
            var prepared = ImageFileCheck.Read(path, maxPixelsPerFrame, allFrames: true);
            if (Image.DetectFormat(prepared.Bytes) is not GifFormat)
                throw new PreprocessingException($"'{path}' is not a GIF; videos are read from GIF files or from lists of frame images");
            using var gif = Image.Load<Rgb24>(prepared.Bytes, prepared.Decoder!);
            int count = gif.Frames.Count;
            long delayCentiseconds = 0;
            for (int i = 0; i < count; i++)
                delayCentiseconds += gif.Frames[i].Metadata.GetGifMetadata().FrameDelay;
            double fps = delayCentiseconds > 0 ? count / (delayCentiseconds / 100.0) : FallbackGifFps;
            return SampleFrames(count, fps, gif.Height, gif.Width,
                i => RgbImage.FromImageSharp(gif.Frames[i], $"{path} frame {i}"), options ?? new(), $"'{path}'");
        }
        catch (Exception e) when (e is ImageFormatException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw RgbImage.Unreadable(path, e);
        }
    }

    static IReadOnlyList<RgbImage> SampleFrames(int total, double videoFps, int height, int width, Func<int, RgbImage> frameAt,
        VideoOptions options, string name)
    {
        int n = VideoSampling.SmartNFrames(total, videoFps, options, name);
        var (h, w) = VideoSampling.FrameSize(height, width, n, options, name);
        return VideoSampling.FrameIndices(total, n)
            .Select(i => PillowResize.Bicubic(frameAt(i), w, h))
            .ToList();
    }
}
