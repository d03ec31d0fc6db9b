using System.Buffers.Binary;
using Qwen2VL.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Metadata;

namespace Qwen2VL.Model.Processing;

/// <summary>
/// Bounds the cost of decoding an image file before ImageSharp allocates anything for it (<see cref="InputLimits"/>):
/// the file's size, the pixels its header claims, and for the two formats where a few bytes can ask for gigabytes a
/// walk over the file's own structure. A PNG must end with IEND (a truncated one would otherwise decode silently into a
/// grey image) and hold enough compressed data for the pixels it claims (deflate cannot expand past ~1032:1); its
/// ancillary chunks (text, compressed text, ICC profiles, Exif) are dropped unread — Pillow's <c>convert("RGB")</c>
/// ignores them too, so the pixels are the same. An animated GIF's frames × canvas is what its decoder composites, and
/// is checked against <see cref="InputLimits.MaxAnimationPixels"/>; an image (not a video) decodes only its first frame.
/// </summary>
public static class ImageFileCheck
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>What to hand the decoder: the (possibly trimmed) bytes and a decoder that reads no metadata.</summary>
    public sealed record Prepared(byte[] Bytes, IImageDecoder? Decoder, int Frames);

    /// <summary>Reads <paramref name="path"/> within the limits and returns what to decode (first frame only unless <paramref name="allFrames"/>).</summary>
    public static Prepared Read(string path, long maxPixels, bool allFrames, InputLimits? limits = null)
    {
        limits ??= InputLimits.Default;
        byte[] bytes;
        try
        {
            bytes = InputFile.ReadAllBytes(path, $"'{path}'", limits.MaxImageFileBytes);
        }
        catch (ModelException e) when (e is not PreprocessingException)
        {
            throw new PreprocessingException(e.Message, e);
        }
        return Prepare(bytes, $"'{path}'", maxPixels, allFrames, limits);
    }

    public static Prepared Prepare(byte[] bytes, string name, long maxPixels, bool allFrames, InputLimits limits)
    {
        if (bytes.AsSpan().StartsWith(PngSignature)) return PreparePng(bytes, name, maxPixels);
        if (bytes.Length >= 6 && bytes[0] == 'G' && bytes[1] == 'I' && bytes[2] == 'F')
            return PrepareGif(bytes, name, maxPixels, allFrames, limits);
        IImageInfo info;
        try
        {
            info = Image.Identify(bytes) ?? throw new PreprocessingException($"{name} is not an image format this program can read");
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException)
        {
            throw new PreprocessingException($"{name} is not an image this program can read: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        CheckPixels(name, info.Width, info.Height, maxPixels);
        return new Prepared(bytes, null, 1);
    }

    private static void CheckPixels(string name, long width, long height, long maxPixels)
    {
        if (width < 1 || height < 1)
            throw new PreprocessingException($"{name}: image size {width}x{height} has no pixels");
        if (width * height > maxPixels)
            throw new PreprocessingException($"{name} is {width}x{height} = {width * height} pixels, above the limit of {maxPixels}");
    }

    private static Prepared PreparePng(byte[] bytes, string name, long maxPixels)
    {
        var kept = new MemoryStream(bytes.Length);
        kept.Write(PngSignature);
        int pos = PngSignature.Length;
        long width = 0, height = 0, idatBytes = 0, bitsPerPixel = 0;
        bool sawHeader = false, sawEnd = false;
        while (pos + 12 <= bytes.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(pos));
            string type = System.Text.Encoding.ASCII.GetString(bytes, pos + 4, 4);
            if (length > int.MaxValue || pos + 12L + length > bytes.Length)
                throw new PreprocessingException($"{name} is a truncated PNG: chunk {Printable(type)} of {length} bytes runs past the end of the file");
            var data = bytes.AsSpan(pos + 8, (int)length);
            if (!sawHeader)
            {
                if (type != "IHDR" || length < 13) throw new PreprocessingException($"{name} is a damaged PNG: it does not start with an IHDR chunk");
                sawHeader = true;
                width = BinaryPrimitives.ReadUInt32BigEndian(data);
                height = BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
                int channels = data[9] switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
                if (channels == 0) throw new PreprocessingException($"{name} is a damaged PNG: colour type {data[9]} does not exist");
                bitsPerPixel = channels * (long)data[8];
                CheckPixels(name, width, height, maxPixels);
            }
            if (type == "IDAT") idatBytes += length;
            // Critical chunks and transparency are kept; text, compressed text, ICC, Exif and the rest are not read.
            if (type is "IHDR" or "PLTE" or "IDAT" or "IEND" or "tRNS")
                kept.Write(bytes, pos, 12 + (int)length);
            pos += 12 + (int)length;
            if (type == "IEND") { sawEnd = true; break; }
        }
        if (!sawHeader) throw new PreprocessingException($"{name} is a truncated PNG (no IHDR chunk)");
        if (!sawEnd) throw new PreprocessingException($"{name} is a truncated PNG (it ends before its IEND chunk)");
        long rawBytes = height * ((width * bitsPerPixel + 7) / 8 + 1);
        const long DeflateMaxRatio = 1032;
        if (rawBytes > idatBytes * DeflateMaxRatio + (1 << 16))
            throw new PreprocessingException($"{name} is a damaged PNG: {idatBytes} bytes of compressed pixels cannot hold a {width}x{height} image");
        return new Prepared(kept.ToArray(), new PngDecoder { IgnoreMetadata = true }, 1);
    }

    private static Prepared PrepareGif(byte[] bytes, string name, long maxPixels, bool allFrames, InputLimits limits)
    {
        if (bytes.Length < 13) throw new PreprocessingException($"{name} is a truncated GIF");
        int width = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(6)), height = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        CheckPixels(name, width, height, maxPixels);
        int pos = 13;
        if ((bytes[10] & 0x80) != 0) pos += 3 << ((bytes[10] & 7) + 1);
        int frames = 0;
        while (pos < bytes.Length && bytes[pos] != 0x3B)
        {
            byte kind = bytes[pos++];
            if (kind == 0x21)
            {
                pos++; // the extension's label
            }
            else if (kind == 0x2C)
            {
                if (pos + 9 > bytes.Length) break;
                byte packed = bytes[pos + 8];
                pos += 9;
                if ((packed & 0x80) != 0) pos += 3 << ((packed & 7) + 1);
                pos++; // LZW minimum code size
                frames++;
            }
            else
            {
                break; // not a block ImageSharp reads either; it stops here too
            }
            while (pos < bytes.Length && bytes[pos] != 0) pos += bytes[pos] + 1; // data sub-blocks
            pos++;
        }
        long composited = (long)Math.Max(1, frames) * width * height;
        if (allFrames && composited > limits.MaxAnimationPixels)
            throw new PreprocessingException($"{name} has {frames} frames on a {width}x{height} canvas = {composited} pixels to decode, above the limit of {limits.MaxAnimationPixels}");
        return new Prepared(bytes, new GifDecoder { IgnoreMetadata = !allFrames, DecodingMode = allFrames ? FrameDecodingMode.All : FrameDecodingMode.First }, frames);
    }

    private static string Printable(string type) => type.All(c => c is >= 'A' and <= 'z') ? type : "(garbled)";
}
