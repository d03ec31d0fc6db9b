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

    private ChatEngine(Qwen2VLModel model, Qwen2Tokenizer tokenizer, ImageProcessor processor, BatcherOptions options, string name)
    {
        _model = model;
        Tokenizer = tokenizer;
        Processor = processor;
        ModelName = name;
        long pad = model.PadTokenId ?? (model.EosTokenIds.Count > 0 ? model.EosTokenIds[0] : 0);
        Batcher = new ContinuousBatcher(model, ChatInputs.StopIds(tokenizer, model.EosTokenIds), pad, options);
    }

    public Qwen2Tokenizer Tokenizer { get; }
    public ImageProcessor Processor { get; }
    public ContinuousBatcher Batcher { get; }

    /// <summary>The model's name as the API reports it (the model directory's name).</summary>
    public string ModelName { get; }

    /// <summary>
    /// Loads a model directory (config.json, weights, tokenizer.json; preprocessor_config.json optional) onto
    /// <paramref name="device"/>; errors are one-line <see cref="ModelException"/>s.
    /// </summary>
    public static ChatEngine Load(string modelDir, DeviceKind device, BatcherOptions options, KernelOptions? kernels = null)
    {
        if (!Directory.Exists(modelDir)) throw new ModelException($"model directory not found: {modelDir}");
        string tokenizerPath = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new ModelException($"{modelDir}: no tokenizer.json (serving needs the tokenizer)");
        var tokenizer = Qwen2Tokenizer.Load(tokenizerPath);
        string preprocessorPath = Path.Combine(modelDir, "preprocessor_config.json");
        var processor = File.Exists(preprocessorPath) ? ImageProcessor.Load(preprocessorPath) : new ImageProcessor(new PreprocessorConfig());
        var model = Qwen2VLModel.Load(modelDir, device, kernels ?? KernelOptions.Jit);
        try
        {
            string name = new DirectoryInfo(Path.GetFullPath(modelDir)).Name;
            return new ChatEngine(model, tokenizer, processor, options, name);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The prompt ids and pixels of a conversation (one row); images fill the image items in order.</summary>
    public ForwardInputs BuildPrompt(IReadOnlyList<ChatMessage> messages, IReadOnlyList<RgbImage> images) =>
        ChatPrompt.Build(Tokenizer, Processor, messages, images);

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
