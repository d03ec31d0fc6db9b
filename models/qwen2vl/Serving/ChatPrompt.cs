using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Qwen2VL.Model.Serving;

/// <summary>
/// A whole conversation (system prompt, turns, images where their items stand) turned into one prompt row as
/// Qwen2-VL's processor does: the chat template with a generation prompt, one placeholder per merged patch, the
/// tokenizer, and the pixels of every image in order.
/// </summary>
public static class ChatPrompt
{
    public static ForwardInputs Build(Qwen2Tokenizer tokenizer, ImageProcessor processor, IReadOnlyList<ChatMessage> messages,
        IReadOnlyList<RgbImage> images)
    {
        int slots = messages.Sum(m => m.Content.Count(c => c.Kind == ChatContentKind.Image));
        if (slots != images.Count)
            throw new TokenizerException($"the conversation has {slots} image items but {images.Count} images were given");
        if (messages.Any(m => m.Content.Any(c => c.Kind == ChatContentKind.Video)))
            throw new TokenizerException("videos are not supported in conversations");
        string text = ChatTemplate.Render(messages, addGenerationPrompt: true);
        VisionBatch? batch = null;
        if (images.Count > 0)
        {
            var v = processor.Process(images);
            batch = new VisionBatch(v.PixelValues, v.PatchCount, v.PatchDim, v.Grids.Select(g => new GridThw(g.T, g.H, g.W)).ToArray());
        }
        var grids = batch is null ? [] : batch.Grids.Select(g => (g.T, g.H, g.W)).ToList();
        string expanded = VisionPlaceholders.Expand(text, grids, [], processor.Config.MergeSize);
        var ids = tokenizer.Encode(expanded).Select(id => (long)id).ToArray();
        return new ForwardInputs(ids, 1, ids.Length, Images: batch);
    }

    /// <summary>
    /// Decodes an encoded image (PNG, JPEG, GIF's first frame, …) from memory. The header is read first, so an
    /// image above <paramref name="maxPixels"/> is refused before its pixels are allocated.
    /// </summary>
    public static RgbImage DecodeImage(byte[] bytes, long maxPixels, string name)
    {
        try
        {
            var info = Image.Identify(bytes)
                ?? throw new PreprocessingException($"{name} is not an image format this program can read");
            long pixels = (long)info.Width * info.Height;
            if (pixels > maxPixels)
                throw new ImageTooLargeException($"{name} is {info.Width}x{info.Height} = {pixels} pixels, above the limit of {maxPixels}");
            using var image = Image.Load<Rgb24>(bytes);
            return RgbImage.FromImageSharp(image.Frames.RootFrame, name);
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException)
        {
            throw e is UnknownImageFormatException
                ? new PreprocessingException($"{name} is not an image format this program can read", e)
                : new PreprocessingException($"{name} is a damaged image: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }
}

/// <summary>An image with more pixels than the limit allows (an HTTP server answers 413).</summary>
public sealed class ImageTooLargeException(string message) : Qwen2VL.Runtime.ModelException(message);
