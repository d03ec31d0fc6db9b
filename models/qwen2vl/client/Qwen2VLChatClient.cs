using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Serving;
using Qwen2VL.Runtime;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AiFinishReason = Microsoft.Extensions.AI.ChatFinishReason;

namespace Qwen2VL.ChatClient;

/// <summary>How a <see cref="Qwen2VLChatClient"/> runs: device, concurrent sequences, context, image size limit.</summary>
public sealed record Qwen2VLChatClientOptions
{
    /// <summary>cpu, cuda or ilgpu-cpu.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Conversations decoded together (continuous batching); more wait in a queue.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>Prompt + answer tokens per conversation at most.</summary>
    public int MaxContext { get; init; } = 1024;

    /// <summary>Conversations waiting for a slot at most; one more is an <see cref="InvalidOperationException"/>.</summary>
    public int MaxQueue { get; init; } = 1024;

    /// <summary>Largest image accepted, width·height before resizing.</summary>
    public long MaxImagePixels { get; init; } = 4096L * 4096;

    /// <summary>Answer length when <see cref="ChatOptions.MaxOutputTokens"/> is not set.</summary>
    public int DefaultMaxOutputTokens { get; init; } = 256;
}

/// <summary>
/// Qwen2-VL, compiled from the C# DSL, as a <c>Microsoft.Extensions.AI</c> <see cref="IChatClient"/>. Messages take
/// system, user and assistant roles with <see cref="TextContent"/> and images as <see cref="DataContent"/>
/// (<c>image/*</c>), placed in the prompt where they stand. <see cref="ChatOptions"/> map to generation:
/// <c>MaxOutputTokens</c>, <c>Temperature</c> (0 = greedy; unset = the model's generation_config.json default, greedy
/// without one), <c>TopP</c>, <c>TopK</c>, <c>Seed</c>,
/// <c>StopSequences</c>, and <c>AdditionalProperties["repetition_penalty"]</c>. Concurrent calls are decoded together
/// (continuous batching); the client is thread-safe.
/// </summary>
public sealed class Qwen2VLChatClient : IChatClient
{
    private readonly ChatEngine _engine;
    private readonly Qwen2VLChatClientOptions _options;
    private readonly ChatClientMetadata _metadata;

    private Qwen2VLChatClient(ChatEngine engine, Qwen2VLChatClientOptions options)
    {
        _engine = engine;
        _options = options;
        _metadata = new ChatClientMetadata("qwen2vl", providerUri: null, defaultModelId: engine.ModelName);
    }

    /// <summary>The embedded default model's folder (copied next to the program that references this package).</summary>
    public static string DefaultModelDirectory => Path.Combine(AppContext.BaseDirectory, "qwen2vl-default-model");

    /// <summary>The default model's sample image (a purple shape).</summary>
    public static string DefaultSampleImage => Path.Combine(DefaultModelDirectory, "sample.png");

    /// <summary>Loads a model directory (config.json, weights, tokenizer.json; preprocessor_config.json optional).</summary>
    public static Qwen2VLChatClient Load(string modelDirectory, Qwen2VLChatClientOptions? options = null)
    {
        options ??= new Qwen2VLChatClientOptions();
        var engine = ChatEngine.Load(modelDirectory, DeviceKinds.Parse(options.Device),
            new BatcherOptions(options.MaxBatch, options.MaxContext, options.MaxQueue));
        return new Qwen2VLChatClient(engine, options);
    }

    /// <summary>Loads the embedded default model: a small Qwen2-VL trained on coloured-shape questions.</summary>
    public static Qwen2VLChatClient LoadDefault(Qwen2VLChatClientOptions? options = null) => Load(DefaultModelDirectory, options);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
            updates.Add(update);
        return updates.ToChatResponse();
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prompt = _engine.BuildPrompt(Convert(messages));
        var stream = _engine.TryStart(prompt, Settings(options), out var refusal)
            ?? throw new InvalidOperationException(refusal == ContinuousBatcher.Refusal.Draining
                ? "the chat client is being disposed"
                : $"{_options.MaxQueue} conversations are already waiting");
        string id = Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        await foreach (var piece in stream.ReadAsync(cancellationToken).ConfigureAwait(false))
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, MessageId = id, ModelId = _engine.ModelName, CreatedAt = created };
        var usage = new UsageDetails
        {
            InputTokenCount = stream.PromptTokens,
            OutputTokenCount = stream.CompletionTokens,
            TotalTokenCount = stream.PromptTokens + stream.CompletionTokens,
        };
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
        {
            ResponseId = id,
            MessageId = id,
            ModelId = _engine.ModelName,
            CreatedAt = created,
            FinishReason = stream.FinishReason == "length" ? AiFinishReason.Length : AiFinishReason.Stop,
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : null;

    /// <summary>Finishes the conversations in flight, then frees the model.</summary>
    public void Dispose() => _engine.Dispose();

    /// <summary>What the options set; everything else takes the model's generation defaults (<see cref="ChatEngine.Settings"/>).</summary>
    private ChatSettings Settings(ChatOptions? options)
    {
        double? penalty = null;
        if (options?.AdditionalProperties?.TryGetValue("repetition_penalty", out var p) == true)
            penalty = System.Convert.ToDouble(p, System.Globalization.CultureInfo.InvariantCulture);
        var overrides = new SamplingOverrides
        {
            Temperature = options?.Temperature,
            TopP = options?.TopP,
            TopK = options?.TopK,
            RepetitionPenalty = penalty,
            Seed = options?.Seed is { } seed ? unchecked((int)seed ^ (int)(seed >> 32)) : null,
        };
        int maxTokens = options?.MaxOutputTokens ?? _options.DefaultMaxOutputTokens;
        return _engine.Settings(maxTokens, overrides, options?.StopSequences?.ToList() ?? []);
    }

    /// <summary>The messages as a <see cref="Conversation"/>, images decoded where they stand.</summary>
    private Conversation Convert(IEnumerable<AiChatMessage> messages)
    {
        var conversation = new Conversation();
        int images = 0, count = 0;
        foreach (var message in messages)
        {
            count++;
            string role = message.Role == ChatRole.System ? "system"
                : message.Role == ChatRole.User ? "user"
                : message.Role == ChatRole.Assistant ? "assistant"
                : throw new NotSupportedException($"role '{message.Role}' is not supported (system, user or assistant)");
            var parts = new List<ConversationPart>();
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case TextContent text:
                        parts.Add(ConversationPart.FromText(text.Text));
                        break;
                    case DataContent data when data.HasTopLevelMediaType("image") && role != "system":
                        parts.Add(ConversationPart.FromImage(RgbImage.Decode(data.Data.ToArray(), _options.MaxImagePixels, $"image {++images}")));
                        break;
                    case UsageContent or TextReasoningContent:
                        break;
                    default:
                        throw new NotSupportedException($"{content.GetType().Name} is not supported{(role == "system" ? " in a system message" : "")}: send text as TextContent and images as DataContent (image/*) with the bytes");
                }
            }
            if (role == "system") conversation.AddSystem(string.Concat(parts.Select(x => x.Text)));
            else conversation.Add(new ConversationTurn(role, parts));
        }
        if (count == 0) throw new ArgumentException("no messages", nameof(messages));
        return conversation;
    }
}
