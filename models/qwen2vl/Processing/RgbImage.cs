using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Processing;

/// <summary>
/// An 8-bit RGB image, rows top to bottom, pixels interleaved R,G,B (the layout of a PIL "RGB" image).
/// <see cref="Source"/> names where it came from so errors about it can say which file is at fault.
/// </summary>
public sealed class RgbImage
{
    /// <summary>Refuse to decode images above this many pixels unless the caller sets another limit.</summary>
    public const long DefaultMaxDecodePixels = 100_000_000;

    public int Width { get; }
    public int Height { get; }
    /// <summary>Width·Height·3 bytes.</summary>
    public byte[] Rgb { get; }
    /// <summary>File (or other description) the pixels came from; null for images built in memory.</summary>
    public string? Source { get; }

    public RgbImage(int width, int height, byte[] rgb, string? source = null)
    {
        if (width <= 0 || height <= 0)
            throw new PreprocessingException($"{Describe(source)}: image size {width}x{height} has no pixels");
        if (rgb.LongLength != (long)width * height * 3)
            throw new PreprocessingException(
                $"{Describe(source)}: {rgb.LongLength} bytes do not hold a {width}x{height} RGB image");
        Width = width;
        Height = height;
        Rgb = rgb;
        Source = source;
    }

    /// <summary>A short name for messages: the source if known, otherwise the size.</summary>
    public string Name => Source is null ? $"{Width}x{Height} image" : $"'{Source}'";

    static string Describe(string? source) => source is null ? "image" : $"'{source}'";

    public byte this[int x, int y, int c] => Rgb[(y * Width + x) * 3 + c];

    public RgbImage Copy() => new(Width, Height, (byte[])Rgb.Clone(), Source);

    /// <summary>
    /// Decodes any format ImageSharp reads into RGB. Alpha is dropped, not composited, like PIL's
    /// <c>convert("RGB")</c> (spec §3.2); grey and palette images are expanded.
    /// </summary>
    public static RgbImage Load(string path, long maxPixels = DefaultMaxDecodePixels)
    {
        if (File.Exists(path)) InputFile.RequireRegular(path, $"'{path}'"); // a FIFO would block the decoder forever
        try
        {
            if (!File.Exists(path))
                throw new PreprocessingException($"image file '{path}' does not exist");
            // Size, structure and pixel count checked before the decoder allocates (ImageFileCheck).
            var prepared = ImageFileCheck.Read(path, maxPixels, allFrames: false);
            using var image = prepared.Decoder is null ? Image.Load<Rgb24>(prepared.Bytes) : Image.Load<Rgb24>(prepared.Bytes, prepared.Decoder);
            return FromImageSharp(image.Frames.RootFrame, path);
        }
        catch (Exception e) when (e is ImageFormatException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw Unreadable(path, e);
        }
    }

    /// <summary>
    /// Decodes an encoded image (PNG, JPEG, GIF's first frame, …) from memory, e.g. a request's data: URL. The header
    /// is read first, so an image above <paramref name="maxPixels"/> is refused (<see cref="ImageTooLargeException"/>)
    /// before its pixels are allocated; <paramref name="name"/> says which image in messages.
    /// </summary>
    public static RgbImage Decode(byte[] bytes, long maxPixels, string name)
    {
        try
        {
            var info = Image.Identify(bytes)
                ?? throw new PreprocessingException($"{name} is not an image format this program can read");
            long pixels = (long)info.Width * info.Height;
            if (pixels > maxPixels)
                throw new ImageTooLargeException($"{name} is {info.Width}x{info.Height} = {pixels} pixels, above the limit of {maxPixels}");
            using var image = Image.Load<Rgb24>(bytes);
            return FromImageSharp(image.Frames.RootFrame, name);
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException)
        {
            throw e is UnknownImageFormatException
                ? new PreprocessingException($"{name} is not an image format this program can read", e)
                : new PreprocessingException($"{name} is a damaged image: {OneLine(e.Message)}", e);
        }
    }

    /// <summary>Copies one decoded ImageSharp frame into an <see cref="RgbImage"/>.</summary>
    internal static RgbImage FromImageSharp(ImageFrame<Rgb24> frame, string? source)
    {
        var rgb = new byte[(long)frame.Width * frame.Height * 3];
        frame.CopyPixelDataTo(MemoryMarshal.Cast<byte, Rgb24>(rgb.AsSpan()));
        return new RgbImage(frame.Width, frame.Height, rgb, source);
    }

    internal static PreprocessingException Unreadable(string path, Exception e) => e switch
    {
        UnknownImageFormatException => new($"'{path}' is not an image format this program can read", e),
        InvalidImageContentException => new($"'{path}' is a damaged image: {OneLine(e.Message)}", e),
        IOException or UnauthorizedAccessException => new($"cannot read '{path}': {OneLine(e.Message)}", e),
        _ => new($"cannot decode '{path}': {OneLine(e.Message)}", e),
    };

    static string OneLine(string s) => s.ReplaceLineEndings(" ");
}
