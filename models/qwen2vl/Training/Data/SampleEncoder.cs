using System.Text;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training.Data;

/// <summary>
/// Turns a <see cref="TrainingSample"/> into ids and labels the way Qwen2-VL is fine-tuned: the conversation is
/// rendered with the Qwen2-VL chat template (each <c>&lt;image&gt;</c> / <c>&lt;video&gt;</c> becomes the template's
/// vision item, in order), images and videos go through the image processor, each pad is expanded to one token per
/// merged patch, and the text is tokenized.
/// </summary>
/// <remarks>
/// Labels: the ids of every assistant turn's content and its closing <c>&lt;|im_end|&gt;</c> (so the model learns to
/// stop) are supervised; everything else is −100: the system and user turns, the assistant header
/// <c>&lt;|im_start|&gt;assistant\n</c>, the "\n" after <c>&lt;|im_end|&gt;</c> (unless
/// <see cref="SampleEncoderOptions.SuperviseNewlineAfterImEnd"/>), and every vision token even inside an assistant
/// turn. As in LLaMA-Factory, the supervised and unsupervised stretches are tokenized separately and concatenated,
/// so no BPE token straddles a label boundary; the stretches meet at special tokens or at the header's "\n", where
/// the Qwen2 pre-tokenizer splits anyway, so the ids equal those of tokenizing the whole text in one go unless an
/// answer starts with a newline.
/// </remarks>
public sealed class SampleEncoder
{
    readonly Qwen2Tokenizer _tokenizer;
    readonly long[] _visionIds;

    public ImageProcessor Processor { get; }

    public SampleEncoderOptions Options { get; }

    public SampleEncoder(Qwen2Tokenizer tokenizer, ImageProcessor processor, SampleEncoderOptions? options = null)
    {
        _tokenizer = tokenizer;
        Options = options ?? new SampleEncoderOptions();
        Processor = Options.MinPixels is null && Options.MaxPixels is null
            ? processor
            : new ImageProcessor(processor.Config with
            {
                MinPixels = Options.MinPixels ?? processor.Config.MinPixels,
                MaxPixels = Options.MaxPixels ?? processor.Config.MaxPixels,
            });
        _visionIds = new[] { ChatTemplate.VisionStart, ChatTemplate.VisionEnd, ChatTemplate.ImagePad, ChatTemplate.VideoPad }
            .Select(t => (long)(tokenizer.TokenToId(t) ?? throw new TokenizerException($"the tokenizer has no {t} token, which Qwen2-VL training needs")))
            .ToArray();
        if (tokenizer.TokenToId(ChatTemplate.ImEnd) is null || tokenizer.TokenToId(ChatTemplate.ImStart) is null)
            throw new TokenizerException("the tokenizer lacks <|im_start|> / <|im_end|>, which the chat template needs");
    }

    /// <summary>Loads the sample's images and videos from disk and encodes it; errors name the sample's line.</summary>
    public EncodedSample Encode(TrainingSample sample)
    {
        try
        {
            var images = sample.Images.Select(p => RgbImage.Load(p)).ToList();
            var videos = sample.Videos.Select(v => v.IsFrameList
                ? VideoLoader.LoadFrameFiles(v.Paths)
                : VideoLoader.LoadGif(v.Paths[0], Options.Video)).ToList();
            return Encode(sample.Messages, images, videos, sample.Source);
        }
        catch (ModelException e) when (e is not TrainingDataException)
        {
            throw new TrainingDataException($"{sample.Source}: {e.Message}", e);
        }
    }

    /// <summary>Encodes a conversation whose images and videos are already decoded (in placeholder order).</summary>
    public EncodedSample Encode(IReadOnlyList<TrainingMessage> messages, IReadOnlyList<RgbImage> images,
        IReadOnlyList<IReadOnlyList<RgbImage>> videos, string source = "sample")
    {
        var chat = messages.Select(ToChatMessage).ToList();
        // The vision special tokens come only from <image>/<video> placeholders: typed literally they would claim an
        // image that is not there (and shift every later image onto the wrong slot).
        foreach (var part in chat.SelectMany(m => m.Content).Where(c => c.Kind == ChatContentKind.Text))
            foreach (var special in new[] { ChatTemplate.ImagePad, ChatTemplate.VideoPad, ChatTemplate.VisionStart, ChatTemplate.VisionEnd })
                if (part.TextValue!.Contains(special, StringComparison.Ordinal))
                    throw new TrainingDataException($"{source}: the text holds the special token {special}; write <image> or <video> where an image or video goes");
        int imageSlots = chat.Sum(m => m.Content.Count(c => c.Kind == ChatContentKind.Image));
        int videoSlots = chat.Sum(m => m.Content.Count(c => c.Kind == ChatContentKind.Video));
        if (imageSlots != images.Count || videoSlots != videos.Count)
            throw new TrainingDataException(
                $"{source}: {imageSlots} image and {videoSlots} video placeholders but {images.Count} images and {videos.Count} videos");

        var imageBatch = images.Count == 0 ? null : ToBatch(Processor.Process(images));
        var videoBatch = videos.Count == 0 ? null : ToBatch(Processor.ProcessVideos(videos));
        var pieces = Pieces(chat);
        var rendered = string.Concat(pieces.Select(p => p.Text));
        if (rendered != ChatTemplate.Render(chat))
            throw new InvalidOperationException("SampleEncoder's turn split no longer matches ChatTemplate.Render");

        var ids = new List<long>();
        var labels = new List<long>();
        int merge = Processor.Config.MergeSize, imageIndex = 0, videoIndex = 0;
        foreach (var (text, supervised) in pieces)
        {
            int nImages = TrainingJsonl.Count(text, ChatTemplate.ImagePad), nVideos = TrainingJsonl.Count(text, ChatTemplate.VideoPad);
            string expanded = VisionPlaceholders.Expand(text,
                Grids(imageBatch, imageIndex, nImages), Grids(videoBatch, videoIndex, nVideos), merge);
            imageIndex += nImages;
            videoIndex += nVideos;
            foreach (var id in _tokenizer.Encode(expanded))
            {
                ids.Add(id);
                labels.Add(supervised && Array.IndexOf(_visionIds, (long)id) < 0 ? id : EncodedSample.IgnoreIndex);
            }
        }
        return new EncodedSample(ids.ToArray(), labels.ToArray(), imageBatch, videoBatch, source);
    }

    /// <summary>
    /// The rendered conversation cut into (text, supervised) stretches, adjacent stretches of the same kind joined:
    /// the template text of <see cref="ChatTemplate.Render"/>, with each assistant turn's content + &lt;|im_end|&gt;
    /// marked supervised.
    /// </summary>
    List<(string Text, bool Supervised)> Pieces(IReadOnlyList<ChatMessage> chat)
    {
        var pieces = new List<(string Text, bool Supervised)>();
        void Add(string text, bool supervised)
        {
            if (text.Length == 0) return;
            if (pieces.Count > 0 && pieces[^1].Supervised == supervised) pieces[^1] = (pieces[^1].Text + text, supervised);
            else pieces.Add((text, supervised));
        }
        for (int m = 0; m < chat.Count; m++)
        {
            if (m == 0 && chat[0].Role != "system")
                Add(ChatTemplate.ImStart + "system\n" + ChatTemplate.DefaultSystemPrompt + ChatTemplate.ImEnd + "\n", false);
            bool answer = chat[m].Role == "assistant";
            Add(ChatTemplate.ImStart + chat[m].Role + "\n", false);
            Add(RenderItems(chat[m].Content) + ChatTemplate.ImEnd, answer);
            Add("\n", answer && Options.SuperviseNewlineAfterImEnd);
        }
        return pieces;
    }

    static string RenderItems(IReadOnlyList<ChatContent> items)
    {
        var sb = new StringBuilder();
        foreach (var item in items)
            sb.Append(item.Kind switch
            {
                ChatContentKind.Image => ChatTemplate.VisionStart + ChatTemplate.ImagePad + ChatTemplate.VisionEnd,
                ChatContentKind.Video => ChatTemplate.VisionStart + ChatTemplate.VideoPad + ChatTemplate.VisionEnd,
                _ => item.TextValue,
            });
        return sb.ToString();
    }

    /// <summary>Splits "text &lt;image&gt; text &lt;video&gt;" into the template's text / image / video items.</summary>
    public static ChatMessage ToChatMessage(TrainingMessage message)
    {
        var items = new List<ChatContent>();
        string s = message.Content;
        int start = 0;
        while (start < s.Length)
        {
            int image = s.IndexOf(TrainingSample.ImagePlaceholder, start, StringComparison.Ordinal);
            int video = s.IndexOf(TrainingSample.VideoPlaceholder, start, StringComparison.Ordinal);
            int next = image < 0 ? video : video < 0 ? image : Math.Min(image, video);
            if (next < 0) break;
            if (next > start) items.Add(ChatContent.Text(s[start..next]));
            bool isImage = next == image;
            items.Add(isImage ? ChatContent.Image() : ChatContent.Video());
            start = next + (isImage ? TrainingSample.ImagePlaceholder : TrainingSample.VideoPlaceholder).Length;
        }
        if (start < s.Length || items.Count == 0) items.Add(ChatContent.Text(s[start..]));
        return new ChatMessage(message.Role, items);
    }

    internal static VisionBatch ToBatch(ProcessedVision v) =>
        new(v.PixelValues, v.PatchCount, v.PatchDim, v.Grids.Select(g => new GridThw(g.T, g.H, g.W)).ToArray());

    static IReadOnlyList<(int t, int h, int w)> Grids(VisionBatch? batch, int start, int count) =>
        count == 0 ? [] : batch!.Grids.Skip(start).Take(count).Select(g => (g.T, g.H, g.W)).ToList();
}
