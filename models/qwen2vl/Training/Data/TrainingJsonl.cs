using Qwen2VL.Runtime;
using System.Text.Json;

namespace Qwen2VL.Model.Training.Data;

/// <summary>
/// Reads the common fine-tuning layout (LLaMA-Factory's "sharegpt/openai" style), one sample per line:
/// <c>{"images": ["a.png"], "videos": [["f0.png", "f1.png"], "clip.gif"], "messages": [{"role": "user",
/// "content": "&lt;image&gt;What is this?"}, {"role": "assistant", "content": "a cat"}]}</c>.
/// Media paths are relative to the JSONL file. Blank lines are skipped. Every error names file and line.
/// </summary>
public static class TrainingJsonl
{
    static readonly HashSet<string> Roles = ["system", "user", "assistant"];

    /// <summary>The largest training JSONL read (it is read whole; images stay files until a batch needs them).</summary>
    public const long MaxBytes = 4L << 30;

    public static IReadOnlyList<TrainingSample> Read(string path)
    {
        string[] lines;
        try
        {
            // A regular file of bounded size, strict UTF-8 (a stray byte is an error, not a silent U+FFFD).
            var bytes = InputFile.ReadAllBytes(path, $"training data '{path}'", MaxBytes);
            lines = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes).ReplaceLineEndings("\n").Split('\n');
        }
        catch (System.Text.DecoderFallbackException e)
        {
            throw new TrainingDataException($"'{path}' is not valid UTF-8 text", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ModelException and not TrainingDataException)
        {
            throw new TrainingDataException($"cannot read training data '{path}': {e.Message.ReplaceLineEndings(" ")}", e);
        }
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var samples = new List<TrainingSample>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            samples.Add(ParseLine(lines[i], path, i + 1, baseDir));
        }
        if (samples.Count == 0) throw new TrainingDataException($"'{path}' holds no samples");
        return samples;
    }

    /// <summary>Parses one line; <paramref name="file"/> and <paramref name="line"/> only name it in errors.</summary>
    public static TrainingSample ParseLine(string text, string file, int line, string baseDir)
    {
        string where = $"{file}:{line}";
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, StrictJson.DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new TrainingDataException($"{where}: not valid JSON: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        try { StrictJson.Validate(doc, where); } // one JSON policy for every file
        catch (ModelException e) when (e is not TrainingDataException)
        {
            doc.Dispose();
            throw new TrainingDataException(e.Message, e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Error(where, "expected a JSON object");
            var images = new List<string>();
            if (root.TryGetProperty("images", out var imgs))
            {
                if (imgs.ValueKind != JsonValueKind.Array) throw Error(where, "\"images\" must be an array of paths");
                foreach (var item in imgs.EnumerateArray())
                    images.Add(Resolve(PathString(item, where, $"images[{images.Count}]"), baseDir));
            }
            var videos = new List<TrainingVideo>();
            if (root.TryGetProperty("videos", out var vids))
            {
                if (vids.ValueKind != JsonValueKind.Array) throw Error(where, "\"videos\" must be an array");
                foreach (var item in vids.EnumerateArray())
                    videos.Add(ParseVideo(item, where, $"videos[{videos.Count}]", baseDir));
            }
            if (!root.TryGetProperty("messages", out var msgs) || msgs.ValueKind != JsonValueKind.Array)
                throw Error(where, "\"messages\" is missing or not an array");
            var messages = new List<TrainingMessage>();
            foreach (var m in msgs.EnumerateArray())
                messages.Add(ParseMessage(m, where, messages.Count));
            CheckConversation(messages, where);
            CheckPlaceholders(messages, images.Count, videos.Count, where);
            return new TrainingSample(images, videos, messages, where);
        }
    }

    static TrainingVideo ParseVideo(JsonElement item, string where, string what, string baseDir)
    {
        if (item.ValueKind == JsonValueKind.String)
            return new TrainingVideo([Resolve(PathString(item, where, what), baseDir)], IsFrameList: false);
        if (item.ValueKind != JsonValueKind.Array)
            throw Error(where, $"{what} must be a GIF path or an array of frame paths");
        var frames = item.EnumerateArray().Select((f, k) => Resolve(PathString(f, where, $"{what}[{k}]"), baseDir)).ToList();
        if (frames.Count == 0) throw Error(where, $"{what} has no frames");
        return new TrainingVideo(frames, IsFrameList: true);
    }

    static TrainingMessage ParseMessage(JsonElement m, string where, int index)
    {
        if (m.ValueKind != JsonValueKind.Object) throw Error(where, $"messages[{index}] must be an object");
        if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
            throw Error(where, $"messages[{index}] has no string \"role\"");
        if (!Roles.Contains(role.GetString()!))
            throw Error(where, $"messages[{index}] has role \"{role.GetString()}\"; expected system, user or assistant");
        if (!m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
            throw Error(where, $"messages[{index}] has no string \"content\"");
        return new TrainingMessage(role.GetString()!, content.GetString()!);
    }

    /// <summary>A sample must teach something: at least one assistant turn; a system turn may only come first.</summary>
    static void CheckConversation(List<TrainingMessage> messages, string where)
    {
        if (messages.Count == 0) throw Error(where, "\"messages\" is empty");
        for (int i = 1; i < messages.Count; i++)
            if (messages[i].Role == "system") throw Error(where, $"messages[{i}] is a system turn; only the first message may be");
        if (!messages.Any(m => m.Role == "assistant")) throw Error(where, "no assistant message, so nothing to learn");
    }

    static void CheckPlaceholders(List<TrainingMessage> messages, int images, int videos, string where)
    {
        int imageSlots = messages.Sum(m => Count(m.Content, TrainingSample.ImagePlaceholder));
        int videoSlots = messages.Sum(m => Count(m.Content, TrainingSample.VideoPlaceholder));
        if (imageSlots != images)
            throw Error(where, $"the messages have {imageSlots} {TrainingSample.ImagePlaceholder} placeholders but \"images\" lists {images}");
        if (videoSlots != videos)
            throw Error(where, $"the messages have {videoSlots} {TrainingSample.VideoPlaceholder} placeholders but \"videos\" lists {videos}");
    }

    internal static int Count(string text, string token)
    {
        int n = 0;
        for (int i = text.IndexOf(token, StringComparison.Ordinal); i >= 0; i = text.IndexOf(token, i + token.Length, StringComparison.Ordinal))
            n++;
        return n;
    }

    static string PathString(JsonElement e, string where, string what)
    {
        if (e.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(e.GetString()))
            throw Error(where, $"{what} must be a non-empty path string");
        return e.GetString()!;
    }

    static string Resolve(string path, string baseDir) => Path.GetFullPath(Path.Combine(baseDir, path));

    static TrainingDataException Error(string where, string message) => new($"{where}: {message}");
}
