using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;

namespace Qwen2VL.Model.Generation;

/// <summary>
/// One user turn with images, videos and text, turned into model inputs as Qwen2-VL's processor does (spec §3, §4):
/// pixels through <see cref="ImageProcessor"/>, the chat template with a generation prompt, one placeholder per
/// merged patch (<see cref="VisionPlaceholders"/>), then the tokenizer. A batch of one row, no padding.
/// </summary>
public static class ChatInputs
{
    public static ForwardInputs Build(Qwen2Tokenizer tokenizer, ImageProcessor processor, IReadOnlyList<RgbImage> images,
        IReadOnlyList<IReadOnlyList<RgbImage>> videos, string prompt)
    {
        var content = new List<ChatContent>();
        content.AddRange(images.Select(_ => ChatContent.Image()));
        content.AddRange(videos.Select(_ => ChatContent.Video()));
        content.Add(ChatContent.Text(prompt));
        string text = ChatTemplate.Render([new ChatMessage("user", content)], addGenerationPrompt: true);

        var imageBatch = images.Count == 0 ? null : ToBatch(processor.Process(images));
        var videoBatch = videos.Count == 0 ? null : ToBatch(processor.ProcessVideos(videos));
        int merge = processor.Config.MergeSize;
        string expanded = VisionPlaceholders.Expand(text, Grids(imageBatch), Grids(videoBatch), merge);
        var ids = tokenizer.Encode(expanded).Select(id => (long)id).ToArray();
        return new ForwardInputs(ids, 1, ids.Length, Images: imageBatch, Videos: videoBatch);
    }

    /// <summary>The ids that end an answer: the model's eos ids plus the chat template's &lt;|im_end|&gt; and &lt;|endoftext|&gt;.</summary>
    public static IReadOnlyList<long> StopIds(Qwen2Tokenizer tokenizer, IEnumerable<long> modelEos)
    {
        var ids = new List<long>(modelEos);
        foreach (var token in new[] { ChatTemplate.ImEnd, "<|endoftext|>" })
            if (tokenizer.TokenToId(token) is { } id && !ids.Contains(id)) ids.Add(id);
        return ids;
    }

    private static VisionBatch ToBatch(ProcessedVision v) =>
        new(v.PixelValues, v.PatchCount, v.PatchDim, v.Grids.Select(g => new GridThw(g.T, g.H, g.W)).ToArray());

    private static IReadOnlyList<(int t, int h, int w)> Grids(VisionBatch? batch) =>
        batch is null ? [] : batch.Grids.Select(g => (g.T, g.H, g.W)).ToList();
}
