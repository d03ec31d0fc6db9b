using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;

namespace Qwen2VL.Model.Serving;

/// <summary>How one answer is generated: its token budget, sampling, stop strings, and whether end ids are ignored.</summary>
public sealed record ChatSettings(int MaxTokens, SamplingOptions Sampling, IReadOnlyList<string> Stop, bool IgnoreEos = false);

/// <summary>
/// A model directory ready to answer conversations concurrently: the compiled model, its tokenizer and image
/// processor, and a <see cref="ContinuousBatcher"/> that owns the model. What the HTTP server and the
/// <c>IChatClient</c> share.
/// </summary>
public sealed class ChatEngine : IDisposable
{
    private readonly Qwen2VLModel _model;

    private ChatEngine(Qwen2VLModel model, Qwen2Tokenizer tokenizer, ImageProcessor processor, GenerationDefaults defaults,
        BatcherOptions options, string name)
    {
        _model = model;
        Tokenizer = tokenizer;
        Processor = processor;
        Defaults = defaults;
        ModelName = name;
        long pad = defaults.PadTokenId ?? model.PadTokenId ?? (defaults.EosTokenIds.Count > 0 ? defaults.EosTokenIds[0] : 0);
        Batcher = new ContinuousBatcher(model, ChatInputs.StopIds(tokenizer, defaults.EosTokenIds), pad, options);
    }

    public Qwen2Tokenizer Tokenizer { get; }
    public ImageProcessor Processor { get; }
    public ContinuousBatcher Batcher { get; }

    /// <summary>
    /// The model's generation defaults (<c>generation_config.json</c>, as <c>generate</c> reads it): its end ids stop
    /// every answer, and what a request leaves unset takes its value from here (<see cref="Settings"/>), as vLLM does.
    /// </summary>
    public GenerationDefaults Defaults { get; }

    /// <summary>The model's name as the API reports it (the model directory's name).</summary>
    public string ModelName { get; }

    /// <summary>
    /// Loads a model directory (config.json, weights, tokenizer.json; preprocessor_config.json, generation_config.json
    /// and a chat template optional) onto <paramref name="device"/>, the small files checked before the weights;
    /// errors are one-line <see cref="ModelException"/>s (another chat template than Qwen2-VL's is refused).
    /// </summary>
    public static ChatEngine Load(string modelDir, DeviceKind device, BatcherOptions options, KernelOptions? kernels = null)
    {
        if (!Directory.Exists(modelDir)) throw new ModelException($"model directory not found: {modelDir}");
        string tokenizerPath = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new ModelException($"{modelDir}: no tokenizer.json (serving needs the tokenizer)");
        ChatTemplateFiles.Check(modelDir);
        var tokenizer = Qwen2Tokenizer.Load(tokenizerPath);
        string preprocessorPath = Path.Combine(modelDir, "preprocessor_config.json");
        var processor = File.Exists(preprocessorPath) ? ImageProcessor.Load(preprocessorPath) : new ImageProcessor(new PreprocessorConfig());
        var model = Qwen2VLModel.Load(modelDir, device, kernels ?? KernelOptions.Jit);
        try
        {
            var defaults = GenerationDefaults.Load(modelDir, model.EosTokenIds, model.PadTokenId);
            string name = new DirectoryInfo(Path.GetFullPath(modelDir)).Name;
            return new ChatEngine(model, tokenizer, processor, defaults, options, name);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The prompt ids and pixels of a conversation (one row), through <see cref="Conversation.ToInputs"/>: the one
    /// place a conversation becomes a prompt, shared with <c>generate</c> and <c>chat</c>.
    /// </summary>
    public ForwardInputs BuildPrompt(Conversation conversation) => conversation.ToInputs(Tokenizer, Processor);

    /// <summary>
    /// One answer's settings: what the caller set, the rest from <see cref="Defaults"/> (each override replaces only
    /// its own default, <see cref="GenerationDefaults.Resolve"/>); a bad value is a <see cref="ModelException"/>.
    /// </summary>
    public ChatSettings Settings(int maxTokens, SamplingOverrides overrides, IReadOnlyList<string> stop, bool ignoreEos = false) =>
        new(maxTokens, Defaults.Resolve(overrides), stop, ignoreEos);

    /// <summary>
    /// Queues a prompt for generation; null (with the reason) when the queue is full or the engine is draining.
    /// A prompt longer than the context allows is a <see cref="ModelException"/>.
    /// </summary>
    public ChatStream? TryStart(ForwardInputs prompt, ChatSettings settings, out ContinuousBatcher.Refusal refusal)
    {
        settings.Sampling.Validate();
        var sequence = Batcher.TryEnqueue(new BatchRequest(prompt, settings.MaxTokens, settings.Sampling, settings.IgnoreEos), out refusal);
        return sequence is null ? null : new ChatStream(sequence, Tokenizer, settings.Stop);
    }

    /// <summary>Finishes every queued and running answer, then frees the model.</summary>
    public void Dispose()
    {
        Batcher.Dispose();
        _model.Dispose();
    }
}
