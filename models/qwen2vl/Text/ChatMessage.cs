namespace Qwen2VL.Model.Text;

/// <summary>What a content item is: text, or the slot of one image or one video.</summary>
public enum ChatContentKind
{
    Text,
    Image,
    Video,
}

/// <summary>One content item of a chat message (the template's <c>{"type": "text" | "image" | "video"}</c>).</summary>
public sealed record ChatContent
{
    private ChatContent(ChatContentKind kind, string? textValue)
    {
        Kind = kind;
        TextValue = textValue;
    }

    public ChatContentKind Kind { get; }

    /// <summary>The text of a <see cref="ChatContentKind.Text"/> item; null for images and videos.</summary>
    public string? TextValue { get; }

    public static ChatContent Text(string text) => new(ChatContentKind.Text, text ?? throw new ArgumentNullException(nameof(text)));

    public static ChatContent Image() => new(ChatContentKind.Image, null);

    public static ChatContent Video() => new(ChatContentKind.Video, null);
}

/// <summary>
/// One chat turn. The template renders string content and a list of items the same way except for the items'
/// vision slots, so a plain string is written as a single text item (<see cref="FromText"/>).
/// </summary>
public sealed record ChatMessage(string Role, IReadOnlyList<ChatContent> Content)
{
    public static ChatMessage FromText(string role, string text) => new(role, [ChatContent.Text(text)]);
}
