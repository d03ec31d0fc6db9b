using System.Text;

namespace Qwen2VL.Model.Text;

/// <summary>
/// The Qwen2-VL-Instruct chat template (spec §4.2; <c>chat_template.json</c>) written out in C#, byte for byte:
/// <code>
/// [&lt;|im_start|&gt;system\nYou are a helpful assistant.&lt;|im_end|&gt;\n]   if the first message is not "system"
/// &lt;|im_start|&gt;{role}\n{items}&lt;|im_end|&gt;\n                          for each message
/// &lt;|im_start|&gt;assistant\n                                          if addGenerationPrompt
/// </code>
/// where an image item is <c>[Picture n: ]&lt;|vision_start|&gt;&lt;|image_pad|&gt;&lt;|vision_end|&gt;</c>, a video item
/// <c>[Video n: ]&lt;|vision_start|&gt;&lt;|video_pad|&gt;&lt;|vision_end|&gt;</c> (the prefixes only with addVisionId;
/// images and videos are counted separately across the whole conversation), and a text item its text, with
/// nothing between items. The single pad per item is expanded later by <see cref="VisionPlaceholders.Expand"/>.
/// </summary>
public static class ChatTemplate
{
    public const string DefaultSystemPrompt = "You are a helpful assistant.";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";
    public const string VisionStart = "<|vision_start|>";
    public const string VisionEnd = "<|vision_end|>";
    public const string ImagePad = "<|image_pad|>";
    public const string VideoPad = "<|video_pad|>";

    public static string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false, bool addVisionId = false) =>
        Render(messages, addGenerationPrompt, addVisionId, continuation: false);

    /// <summary>
    /// The text the template writes for <paramref name="messages"/> when they follow earlier ones: no default system
    /// prompt in front (the template adds it only before the first message of a conversation).
    /// </summary>
    public static string RenderContinuation(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        Render(messages, addGenerationPrompt, addVisionId: false, continuation: true);

    private static string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, bool addVisionId, bool continuation)
    {
        var sb = new StringBuilder();
        var images = 0;
        var videos = 0;
        for (var m = 0; m < messages.Count; m++)
        {
            var message = messages[m];
            if (m == 0 && !continuation && message.Role != "system")
                sb.Append(ImStart).Append("system\n").Append(DefaultSystemPrompt).Append(ImEnd).Append('\n');
            sb.Append(ImStart).Append(message.Role).Append('\n');
            foreach (var item in message.Content)
            {
                switch (item.Kind)
                {
                    case ChatContentKind.Image:
                        images++;
                        if (addVisionId) sb.Append("Picture ").Append(images).Append(": ");
                        sb.Append(VisionStart).Append(ImagePad).Append(VisionEnd);
                        break;
                    case ChatContentKind.Video:
                        videos++;
                        if (addVisionId) sb.Append("Video ").Append(videos).Append(": ");
                        sb.Append(VisionStart).Append(VideoPad).Append(VisionEnd);
                        break;
                    default:
                        sb.Append(item.TextValue);
                        break;
                }
            }
            sb.Append(ImEnd).Append('\n');
        }
        if (addGenerationPrompt) sb.Append(ImStart).Append("assistant\n");
        return sb.ToString();
    }
}
