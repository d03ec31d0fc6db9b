namespace Qwen2VL.Model.Processing;

/// <summary>
/// The Hugging Face <c>Qwen2VLImageProcessor</c> (slow, Pillow path) of transformers v4.49, spec §3.1–3.4:
/// smart_resize → Pillow bicubic → rescale → normalise → pad frames to a multiple of Tp → merge-window patches.
/// Images and videos go through the same steps; an image is a one-frame video.
/// </summary>
public sealed class ImageProcessor
{
    /// <summary>Per channel, the normalised float32 value of each byte (rescale and normalise depend only on it).</summary>
    readonly float[][] _lookup;

    public PreprocessorConfig Config { get; }

    public ImageProcessor(PreprocessorConfig config)
    {
        config.Validate("preprocessor config");
        Config = config;
        _lookup = new float[3][];
        for (int c = 0; c < 3; c++)
        {
            _lookup[c] = new float[256];
            float mean = config.ImageMean[c], std = config.ImageStd[c];
            for (int v = 0; v < 256; v++)
            {
                // Rescale in float64 then store float32; normalise in float32 (numpy's dtype rules in HF's
                // rescale/normalize, spec §3.2 steps 3-4).
                float x = config.DoRescale ? (float)(v * config.RescaleFactor) : v;
                _lookup[c][v] = config.DoNormalize ? (x - mean) / std : x;
            }
        }
    }

    public static ImageProcessor Load(string preprocessorConfigPath) => new(PreprocessorConfig.Load(preprocessorConfigPath));

    /// <summary>The (height, width) an image of this size is resized to; errors name the image.</summary>
    public (int Height, int Width) TargetSize(RgbImage image)
    {
        try
        {
            return SmartResize.Compute(image.Height, image.Width, Config.Factor, Config.MinPixels, Config.MaxPixels);
        }
        catch (PreprocessingException e)
        {
            throw new PreprocessingException($"{image.Name}: {e.Message}", e);
        }
    }

    /// <summary>The uint8 image the patches are cut from (what the fixtures store as <c>*_resized_u8</c>).</summary>
    public RgbImage Resize(RgbImage image)
    {
        var (h, w) = TargetSize(image);
        return PillowResize.Bicubic(image, w, h);
    }

    /// <summary>Each image is its own item with grid_t = 1 (its frame repeated Tp times).</summary>
    public ProcessedVision Process(IReadOnlyList<RgbImage> images) =>
        ProcessItems(images.Select(image => (IReadOnlyList<RgbImage>)[image]).ToList());

    /// <summary>Each video is a list of frames; all frames get the size smart_resize picks for the first one.</summary>
    public ProcessedVision ProcessVideos(IReadOnlyList<IReadOnlyList<RgbImage>> videos) => ProcessItems(videos);

    ProcessedVision ProcessItems(IReadOnlyList<IReadOnlyList<RgbImage>> items)
    {
        int tp = Config.TemporalPatchSize, p = Config.PatchSize;
        var plans = new List<(IReadOnlyList<RgbImage> Frames, int Height, int Width, (int T, int H, int W) Grid)>();
        long rows = 0;
        foreach (var frames in items)
        {
            if (frames.Count == 0)
                throw new PreprocessingException($"video {plans.Count} has no frames");
            var (h, w) = TargetSize(frames[0]);
            int paddedFrames = (frames.Count + tp - 1) / tp * tp;
            var grid = (paddedFrames / tp, h / p, w / p);
            plans.Add((frames, h, w, grid));
            rows += (long)grid.Item1 * grid.Item2 * grid.Item3;
        }
        if (rows * Config.PatchDim > Array.MaxLength)
            throw new PreprocessingException(
                $"the visual input makes {rows} patches, more than one pixel_values array can hold; lower max_pixels or the frame count");

        var pixelValues = new float[rows * Config.PatchDim];
        long offset = 0;
        foreach (var (frames, h, w, grid) in plans)
        {
            var normalised = new List<float[]>(grid.T * tp);
            foreach (var frame in frames)
                normalised.Add(Normalise(PillowResize.Bicubic(frame, w, h)));
            // Pad by repeating the last frame up to a multiple of Tp (§3.3): an image becomes Tp equal frames.
            while (normalised.Count % tp != 0)
                normalised.Add(normalised[^1]);
            long count = (long)grid.T * grid.H * grid.W * Config.PatchDim;
            PatchFlattener.Flatten(normalised, h, w, p, tp, Config.MergeSize,
                pixelValues.AsSpan((int)offset, (int)count));
            offset += count;
        }
        return new ProcessedVision(pixelValues, Config.PatchDim, plans.Select(x => x.Grid).ToList());
    }

    /// <summary>uint8 HWC → normalised float32 CHW.</summary>
    float[] Normalise(RgbImage image)
    {
        int plane = image.Width * image.Height;
        var chw = new float[3 * plane];
        var rgb = image.Rgb;
        for (int i = 0; i < plane; i++)
        {
            chw[i] = _lookup[0][rgb[3 * i]];
            chw[plane + i] = _lookup[1][rgb[3 * i + 1]];
            chw[2 * plane + i] = _lookup[2][rgb[3 * i + 2]];
        }
        return chw;
    }
}
