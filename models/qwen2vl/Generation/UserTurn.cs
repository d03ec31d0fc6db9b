using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>
/// A user's text with its images and videos placed where they belong: at each <c>&lt;image&gt;</c> /
/// <c>&lt;video&gt;</c> placeholder, in order (the same placeholders as the training JSONL), or, when the text has
/// none, all images then all videos before the text (what the README's examples and qwen-vl-utils do).
/// </summary>
public static class UserTurn
{
    public const string ImagePlaceholder = TrainingSample.ImagePlaceholder;
    public const string VideoPlaceholder = TrainingSample.VideoPlaceholder;

    /// <summary>The template items of one user message; the placeholder counts must match the media counts.</summary>
    public static ChatMessage Message(string text, int images, int videos, string role = "user")
    {
        int imageSlots = Count(text, ImagePlaceholder), videoSlots = Count(text, VideoPlaceholder);
        if (imageSlots == 0 && videoSlots == 0)
        {
            var items = new List<ChatContent>();
            items.AddRange(Enumerable.Repeat(ChatContent.Image(), images));
            items.AddRange(Enumerable.Repeat(ChatContent.Video(), videos));
            items.Add(ChatContent.Text(text));
            return new ChatMessage(role, items);
        }
        if (imageSlots != images)
            throw new ModelException($"the prompt has {imageSlots} {ImagePlaceholder} placeholder{(imageSlots == 1 ? "" : "s")} but {images} image{(images == 1 ? " was" : "s were")} given");
        if (videoSlots != videos)
            throw new ModelException($"the prompt has {videoSlots} {VideoPlaceholder} placeholder{(videoSlots == 1 ? "" : "s")} but {videos} video{(videos == 1 ? " was" : "s were")} given");
        return new ChatMessage(role, Split(text));
    }

    /// <summary>"a &lt;image&gt; b &lt;video&gt;" → text "a ", image, text " b ", video (empty texts dropped).</summary>
    private static List<ChatContent> Split(string s)
    {
        var items = new List<ChatContent>();
        int start = 0;
        while (start < s.Length)
        {
            int image = s.IndexOf(ImagePlaceholder, start, StringComparison.Ordinal);
            int video = s.IndexOf(VideoPlaceholder, start, StringComparison.Ordinal);
            int next = image < 0 ? video : video < 0 ? image : Math.Min(image, video);
            if (next < 0) break;
            if (next > start) items.Add(ChatContent.Text(s[start..next]));
            bool isImage = next == image;
            items.Add(isImage ? ChatContent.Image() : ChatContent.Video());
            start = next + (isImage ? ImagePlaceholder : VideoPlaceholder).Length;
        }
        if (start < s.Length) items.Add(ChatContent.Text(s[start..]));
        return items;
    }

    private static int Count(string text, string token)
    {
        int count = 0;
        for (int i = text.IndexOf(token, StringComparison.Ordinal); i >= 0; i = text.IndexOf(token, i + token.Length, StringComparison.Ordinal))
            count++;
        return count;
    }
}
