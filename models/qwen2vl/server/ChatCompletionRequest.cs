using System.Text.Json;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Serving;

namespace Qwen2VL.Server;

/// <summary>
/// The body of <c>POST /v1/chat/completions</c>, read and checked field by field so each mistake gets its own
/// message: messages (system, user, assistant; content a string or parts of type <c>text</c> and
/// <c>image_url</c> with a <c>data:</c> URL), <c>stream</c>, <c>max_tokens</c> / <c>max_completion_tokens</c>,
/// <c>temperature</c>, <c>top_p</c>, <c>seed</c>, <c>stop</c>, and <c>ignore_eos</c> (vLLM's extension).
/// </summary>
public sealed record ChatCompletionRequest(
    string? Model,
    Conversation Conversation,
    bool Stream,
    bool IncludeUsage,
    int? MaxTokens,
    SamplingOverrides Sampling,
    IReadOnlyList<string> Stop,
    bool IgnoreEos)
{
    public static ChatCompletionRequest Parse(byte[] body, ServerOptions options)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw ApiError.BadRequest($"the request body is not valid JSON: {e.Message.ReplaceLineEndings(" ")}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("the request body must be a JSON object");
            string? model = OptionalString(root, "model");
            if (Optional(root, "n") is { } n && !(n.ValueKind == JsonValueKind.Number && n.TryGetInt32(out int count) && count == 1))
                throw ApiError.BadRequest("only n = 1 is supported", "n");
            var conversation = ParseMessages(root, options);
            bool stream = Optional(root, "stream") is { } s && Bool(s, "stream");
            bool includeUsage = Optional(root, "stream_options") is { ValueKind: JsonValueKind.Object } so
                && so.TryGetProperty("include_usage", out var iu) && Bool(iu, "stream_options.include_usage");
            int? maxTokens = OptionalInt(root, "max_completion_tokens") ?? OptionalInt(root, "max_tokens");
            if (maxTokens < 1) throw ApiError.BadRequest($"max_tokens must be ≥ 1, got {maxTokens}", "max_tokens");
            // What the request leaves out takes the model's generation_config.json default (greedy without one), as vLLM does.
            double? temperature = OptionalNumber(root, "temperature");
            if (temperature is { } t && !(t >= 0 && t <= 2)) throw ApiError.BadRequest($"temperature must be in [0, 2], got {t}", "temperature");
            double? topP = OptionalNumber(root, "top_p");
            if (topP is { } p && !(p > 0 && p <= 1)) throw ApiError.BadRequest($"top_p must be in (0, 1], got {p}", "top_p");
            double? penalty = OptionalNumber(root, "repetition_penalty");
            if (penalty is { } r && (!(r > 0) || double.IsInfinity(r))) throw ApiError.BadRequest($"repetition_penalty must be > 0, got {r}", "repetition_penalty");
            int? seed = OptionalLong(root, "seed") is { } sd ? unchecked((int)sd ^ (int)(sd >> 32)) : null;
            bool ignoreEos = Optional(root, "ignore_eos") is { } ie && Bool(ie, "ignore_eos");
            var sampling = new SamplingOverrides { Temperature = temperature, TopP = topP, RepetitionPenalty = penalty, Seed = seed };
            return new ChatCompletionRequest(model, conversation, stream, includeUsage, maxTokens, sampling, ParseStop(root), ignoreEos);
        }
    }

    /// <summary>
    /// The messages as a <see cref="Conversation"/> (the one place a conversation becomes a prompt): a system message
    /// at the start is its system prompt, a later one stays where it is; user and assistant messages are turns whose
    /// text and images keep their order.
    /// </summary>
    private static Conversation ParseMessages(JsonElement root, ServerOptions options)
    {
        if (!root.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            throw ApiError.BadRequest("'messages' must be a non-empty array", "messages");
        var conversation = new Conversation();
        int index = 0, images = 0;
        foreach (var m in list.EnumerateArray())
        {
            string where = $"messages[{index++}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"{where} must be an object", where);
            string role = OptionalString(m, "role", where) ?? throw ApiError.BadRequest($"{where} has no 'role'", where);
            if (role == "developer") role = "system";
            if (role is not ("system" or "user" or "assistant"))
                throw ApiError.BadRequest($"{where}.role '{role}' is not supported (system, user or assistant)", where);
            if (!m.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
                throw ApiError.BadRequest($"{where} has no 'content'", where);
            var parts = new List<ConversationPart>();
            if (content.ValueKind == JsonValueKind.String)
                parts.Add(ConversationPart.FromText(content.GetString()!));
            else if (content.ValueKind == JsonValueKind.Array)
            {
                int p = 0;
                foreach (var part in content.EnumerateArray())
                    parts.Add(ParsePart(part, $"{where}.content[{p++}]", role, ref images, options));
            }
            else throw ApiError.BadRequest($"{where}.content must be a string or an array of parts", where);
            if (role == "system") conversation.AddSystem(string.Concat(parts.Select(x => x.Text)));
            else conversation.Add(new ConversationTurn(role, parts));
        }
        return conversation;
    }

    private static ConversationPart ParsePart(JsonElement part, string where, string role, ref int images, ServerOptions options)
    {
        if (part.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"{where} must be an object", where);
        string type = OptionalString(part, "type", where) ?? throw ApiError.BadRequest($"{where} has no 'type'", where);
        switch (type)
        {
            case "text":
                return ConversationPart.FromText(OptionalString(part, "text", where) ?? throw ApiError.BadRequest($"{where} has no 'text'", where));
            case "image_url":
                if (role == "system") throw ApiError.BadRequest($"{where}: images are not allowed in a system message", where);
                if (images == options.MaxImages)
                    throw new ApiError(413, $"more than {options.MaxImages} images in one request", where);
                var url = part.TryGetProperty("image_url", out var iu) ? iu.ValueKind switch
                {
                    JsonValueKind.Object => OptionalString(iu, "url", where + ".image_url"),
                    JsonValueKind.String => iu.GetString(),
                    _ => null,
                } : null;
                if (url is null) throw ApiError.BadRequest($"{where} has no image_url.url", where);
                images++;
                return ConversationPart.FromImage(DataUrlImage(url, where, options));
            default:
                throw ApiError.BadRequest($"{where}: content part type '{type}' is not supported (text or image_url)", where);
        }
    }

    /// <summary>A <c>data:[mediatype];base64,…</c> URL decoded to pixels; any other URL is refused (the server fetches nothing).</summary>
    private static RgbImage DataUrlImage(string url, string where, ServerOptions options)
    {
        if (!url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest($"{where}: remote image URLs are not supported; send the image inline as a data: URL (data:image/png;base64,...)", where);
        int comma = url.IndexOf(',');
        if (comma < 0 || !url.AsSpan(5, comma - 5).EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest($"{where}: the data: URL must be base64-encoded (data:image/png;base64,...)", where);
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(url[(comma + 1)..]);
        }
        catch (FormatException)
        {
            throw ApiError.BadRequest($"{where}: the data: URL's base64 payload is invalid", where);
        }
        try
        {
            return RgbImage.Decode(bytes, options.MaxImagePixels, $"the image of {where}");
        }
        catch (ImageTooLargeException e)
        {
            throw new ApiError(413, e.Message, where);
        }
        catch (PreprocessingException e)
        {
            throw ApiError.BadRequest(e.Message, where);
        }
    }

    private static IReadOnlyList<string> ParseStop(JsonElement root)
    {
        if (Optional(root, "stop") is not { } stop) return [];
        if (stop.ValueKind == JsonValueKind.String) return [stop.GetString()!];
        if (stop.ValueKind == JsonValueKind.Array && stop.GetArrayLength() <= 4 && stop.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
            return stop.EnumerateArray().Select(s => s.GetString()!).ToList();
        throw ApiError.BadRequest("'stop' must be a string or an array of at most 4 strings", "stop");
    }

    private static JsonElement? Optional(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static string? OptionalString(JsonElement e, string name, string? where = null)
    {
        if (Optional(e, name) is not { } v) return null;
        string path = where is null ? name : $"{where}.{name}";
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw ApiError.BadRequest($"'{path}' must be a string", path);
    }

    private static double? OptionalNumber(JsonElement e, string name) =>
        Optional(e, name) is not { } v ? null
        : v.ValueKind == JsonValueKind.Number ? v.GetDouble()
        : throw ApiError.BadRequest($"'{name}' must be a number", name);

    private static long? OptionalLong(JsonElement e, string name) =>
        Optional(e, name) is not { } v ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long x) ? x
        : throw ApiError.BadRequest($"'{name}' must be an integer", name);

    private static int? OptionalInt(JsonElement e, string name) =>
        OptionalLong(e, name) is not { } x ? null
        : x is >= int.MinValue and <= int.MaxValue ? (int)x
        : throw ApiError.BadRequest($"'{name}' is out of range", name);

    private static bool Bool(JsonElement v, string name) => v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw ApiError.BadRequest($"'{name}' must be true or false", name),
    };
}
