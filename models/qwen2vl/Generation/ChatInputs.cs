using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;

namespace Qwen2VL.Model.Generation;

/// <summary>
/// One user turn with images, videos and text, turned into model inputs as Qwen2-VL's processor does (spec §3, §4):
/// a one-turn <see cref="Conversation"/> (images where the text's <c>&lt;image&gt;</c> placeholders are, else first).
/// </summary>
public static class ChatInputs
{
    public static ForwardInputs Build(Qwen2Tokenizer tokenizer, ImageProcessor processor, IReadOnlyList<RgbImage> images,
        IReadOnlyList<IReadOnlyList<RgbImage>> videos, string prompt, string? system = null)
    {
        var conversation = new Conversation { System = system };
        conversation.AddUser(prompt, images, videos);
        return conversation.ToInputs(tokenizer, processor);
    }

    /// <summary>The ids that end an answer: the model's eos ids plus the chat template's &lt;|im_end|&gt; and &lt;|endoftext|&gt;.</summary>
    public static IReadOnlyList<long> StopIds(Qwen2Tokenizer tokenizer, IEnumerable<long> modelEos)
    {
        var ids = new List<long>(modelEos);
        foreach (var token in new[] { ChatTemplate.ImEnd, "<|endoftext|>" })
            if (tokenizer.TokenToId(token) is { } id && !ids.Contains(id)) ids.Add(id);
        return ids;
    }
}
