using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>One item of a turn, in the order it is written: a piece of text, one image, or one video (its frames).</summary>
public sealed record ConversationPart
{
    private ConversationPart(ChatContentKind kind, string? text, RgbImage? image, IReadOnlyList<RgbImage>? video)
    {
        Kind = kind;
        Text = text;
        Image = image;
        Video = video;
    }

    public ChatContentKind Kind { get; }
    public string? Text { get; }
    public RgbImage? Image { get; }
    public IReadOnlyList<RgbImage>? Video { get; }

    public static ConversationPart FromText(string text) => new(ChatContentKind.Text, text ?? throw new ArgumentNullException(nameof(text)), null, null);
    public static ConversationPart FromImage(RgbImage image) => new(ChatContentKind.Image, null, image ?? throw new ArgumentNullException(nameof(image)), null);

    public static ConversationPart FromVideo(IReadOnlyList<RgbImage> frames) =>
        frames is null || frames.Count == 0 ? throw new ModelException("a video needs at least one frame") : new(ChatContentKind.Video, null, null, frames);

    /// <summary>The chat template's item for this part (media become one slot each).</summary>
    public ChatContent Template => Kind switch
    {
        ChatContentKind.Image => ChatContent.Image(),
        ChatContentKind.Video => ChatContent.Video(),
        _ => ChatContent.Text(Text!),
    };
}

/// <summary>One message of a conversation: "user" or "assistant" (the system prompt is <see cref="Conversation.System"/>; a later system message, <see cref="Conversation.AddSystem"/>).</summary>
public sealed record ConversationTurn(string Role, IReadOnlyList<ConversationPart> Parts)
{
    public ChatMessage Template => new(Role, Parts.Select(p => p.Template).ToList());
}

/// <summary>
/// A chat as the model sees it, the one place where a conversation becomes a prompt (used by <c>generate</c>,
/// <c>chat</c>, <c>serve</c> and the library client): an optional system prompt, then user and assistant turns whose
/// images and videos sit where they were written. Rendering follows the Qwen2-VL chat template
/// (<see cref="ChatTemplate"/>): without a system prompt the template's default one ("You are a helpful assistant.")
/// is used, as transformers' <c>apply_chat_template</c> does; each image or video is one vision slot, expanded to one
/// pad per merged patch when the inputs are built.
/// </summary>
public sealed class Conversation
{
    private readonly List<ConversationTurn> _turns = [];

    /// <summary>The system prompt; null = the template's default.</summary>
    public string? System { get; set; }

    public IReadOnlyList<ConversationTurn> Turns => _turns;

    /// <summary>
    /// Adds a user turn written as text with <c>&lt;image&gt;</c> / <c>&lt;video&gt;</c> placeholders (the training
    /// JSONL's convention): the k-th image goes where the k-th <c>&lt;image&gt;</c> is. Without placeholders, all images
    /// then all videos come before the text. A placeholder count that differs from the media count is a
    /// <see cref="ModelException"/>.
    /// </summary>
    public ConversationTurn AddUser(string text, IReadOnlyList<RgbImage>? images = null, IReadOnlyList<IReadOnlyList<RgbImage>>? videos = null)
    {
        images ??= [];
        videos ??= [];
        var message = UserTurn.Message(text, images.Count, videos.Count);
        int image = 0, video = 0;
        var parts = message.Content.Select(c => c.Kind switch
        {
            ChatContentKind.Image => ConversationPart.FromImage(images[image++]),
            ChatContentKind.Video => ConversationPart.FromVideo(videos[video++]),
            _ => ConversationPart.FromText(c.TextValue!),
        }).ToList();
        return Add(new ConversationTurn("user", parts));
    }

    /// <summary>Adds a user turn given as ordered parts (an OpenAI message's text and image_url parts, say).</summary>
    public ConversationTurn AddUser(IReadOnlyList<ConversationPart> parts) => Add(new ConversationTurn("user", parts.ToList()));

    /// <summary>Adds the model's (or a client-supplied) answer.</summary>
    public ConversationTurn AddAssistant(string text) => Add(new ConversationTurn("assistant", [ConversationPart.FromText(text)]));

    /// <summary>
    /// A system message as an OpenAI-style message list carries it: at the start (no turns yet, no system prompt) it is
    /// <see cref="System"/>; later it is a turn rendered where it stands, as the chat template renders any role.
    /// </summary>
    public void AddSystem(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (_turns.Count == 0 && System is null) System = text;
        else _turns.Add(new ConversationTurn("system", [ConversationPart.FromText(text)]));
    }

    /// <summary>Appends a turn as given (role "user" or "assistant"; a "system" message belongs in <see cref="System"/> or <see cref="AddSystem"/>).</summary>
    public ConversationTurn Add(ConversationTurn turn)
    {
        if (turn.Role is not ("user" or "assistant"))
            throw new ModelException($"a conversation turn is \"user\" or \"assistant\", got \"{turn.Role}\" (the system prompt is set apart)");
        _turns.Add(turn);
        return turn;
    }

    /// <summary>Drops every turn; the system prompt stays.</summary>
    public void Clear() => _turns.Clear();

    /// <summary>Removes the last turn (an answer that failed, say).</summary>
    public void RemoveLast()
    {
        if (_turns.Count > 0) _turns.RemoveAt(_turns.Count - 1);
    }

    /// <summary>The template messages: the system prompt (when set) then every turn.</summary>
    public IReadOnlyList<ChatMessage> Messages()
    {
        var messages = new List<ChatMessage>();
        if (System is not null) messages.Add(ChatMessage.FromText("system", System));
        messages.AddRange(_turns.Select(t => t.Template));
        return messages;
    }

    /// <summary>The chat-templated text, one vision slot per image / video; with a generation prompt when asked.</summary>
    public string Render(bool addGenerationPrompt = true) => ChatTemplate.Render(Messages(), addGenerationPrompt);

    /// <summary>Every image, in the order of the rendered text.</summary>
    public IReadOnlyList<RgbImage> Images => Media(_turns).images;

    /// <summary>Every video, in the order of the rendered text.</summary>
    public IReadOnlyList<IReadOnlyList<RgbImage>> Videos => Media(_turns).videos;

    /// <summary>
    /// The model inputs of the whole conversation (one row, no padding), as Qwen2-VL's processor makes them: pixels
    /// through <paramref name="processor"/>, the template, one pad per merged patch, then the tokenizer.
    /// </summary>
    public ForwardInputs ToInputs(Qwen2Tokenizer tokenizer, ImageProcessor processor, bool addGenerationPrompt = true) =>
        Encode(tokenizer, processor, Render(addGenerationPrompt), _turns);

    /// <summary>
    /// The inputs that continue a cached conversation with its last turns, <paramref name="fromTurn"/> onwards: the
    /// template text that follows the previous answer's last generated token (its &lt;|im_end|&gt;, a newline, the new
    /// turns and the generation prompt), and only the new turns' images and videos. Rendering the whole conversation
    /// gives the same text as the cached text followed by this one (tested), so a cache plus these inputs is the
    /// conversation; positions start at 0 and are shifted by the caller to follow the cache.
    /// </summary>
    public ForwardInputs ContinuationInputs(Qwen2Tokenizer tokenizer, ImageProcessor processor, int fromTurn)
    {
        if (fromTurn <= 0 || fromTurn > _turns.Count)
            throw new ArgumentOutOfRangeException(nameof(fromTurn), $"a continuation starts after at least one turn, at most at {_turns.Count}");
        if (_turns[fromTurn - 1].Role != "assistant")
            throw new ModelException("a conversation continues after an answer");
        var turns = _turns.Skip(fromTurn).ToList();
        // ChatTemplate writes each message as "<|im_start|>role\n…<|im_end|>\n"; the answer's own <|im_end|> is not cached.
        string text = ChatTemplate.ImEnd + "\n" + ChatTemplate.RenderContinuation(turns.Select(t => t.Template).ToList());
        return Encode(tokenizer, processor, text, turns);
    }

    private static ForwardInputs Encode(Qwen2Tokenizer tokenizer, ImageProcessor processor, string text, IReadOnlyList<ConversationTurn> turns)
    {
        var (images, videos) = Media(turns);
        var imageBatch = images.Count == 0 ? null : ToBatch(processor.Process(images));
        var videoBatch = videos.Count == 0 ? null : ToBatch(processor.ProcessVideos(videos));
        string expanded = VisionPlaceholders.Expand(text, Grids(imageBatch), Grids(videoBatch), processor.Config.MergeSize);
        var ids = tokenizer.Encode(expanded).Select(id => (long)id).ToArray();
        if (ids.Length == 0) throw new ModelException("the prompt is empty");
        return new ForwardInputs(ids, 1, ids.Length, Images: imageBatch, Videos: videoBatch);
    }

    private static (List<RgbImage> images, List<IReadOnlyList<RgbImage>> videos) Media(IEnumerable<ConversationTurn> turns)
    {
        var parts = turns.SelectMany(t => t.Parts).ToList();
        return (parts.Where(p => p.Kind == ChatContentKind.Image).Select(p => p.Image!).ToList(),
            parts.Where(p => p.Kind == ChatContentKind.Video).Select(p => p.Video!).ToList());
    }

    private static VisionBatch ToBatch(ProcessedVision v) =>
        new(v.PixelValues, v.PatchCount, v.PatchDim, v.Grids.Select(g => new GridThw(g.T, g.H, g.W)).ToArray());

    private static IReadOnlyList<(int t, int h, int w)> Grids(VisionBatch? batch) =>
        batch is null ? [] : batch.Grids.Select(g => (g.T, g.H, g.W)).ToList();
}
