using System.CommandLine;
using System.Diagnostics;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// The options <c>generate</c> and <c>chat</c> share: the model, its device, the system prompt, how images and videos
/// are sized, and the sampling settings. A sampling flag left out keeps the model's default from
/// <c>generation_config.json</c> (<see cref="GenerationDefaults"/>), as keyword arguments to transformers'
/// <c>generate</c> override only themselves.
/// </summary>
internal sealed class AnswerOptions
{
    public const int FallbackMaxNewTokens = 64;

    public Option<string?> Model { get; } = new("--model") { Description = "Model directory (config.json, weights, tokenizer.json; generation_config.json, chat_template.json, preprocessor_config.json when present). Default: the embedded shapes model (a small Qwen2-VL trained here on synthetic coloured-shape questions)." };
    public Option<string?> System { get; } = new("--system") { Description = "System prompt. Default: the chat template's (\"You are a helpful assistant.\")." };
    public Option<int?> MaxNewTokens { get; } = new("--max-new-tokens") { Description = $"At most this many new tokens. Default: generation_config.json's max_new_tokens, else {FallbackMaxNewTokens}." };
    public Option<double?> Temperature { get; } = new("--temperature") { Description = "0 = greedy; otherwise sample at this temperature. Default: generation_config.json's (greedy without one)." };
    public Option<int?> TopK { get; } = new("--top-k") { Description = "Sample among the k most likely tokens (0 = off). Default: generation_config.json's top_k (transformers' 50 when the file has none)." };
    public Option<double?> TopP { get; } = new("--top-p") { Description = "Sample among the most likely tokens holding probability p (1 = off). Default: generation_config.json's top_p, else 1." };
    public Option<double?> RepetitionPenalty { get; } = new("--repetition-penalty") { Description = "Penalty on tokens already present (1 = off). Default: generation_config.json's repetition_penalty, else 1." };
    public Option<int?> Seed { get; } = new("--seed") { Description = "Seed of the sampling draws. Default: random." };
    public Option<int?> MinPixels { get; } = new("--min-pixels") { Description = "Smallest image area in pixels after resizing (the processor's min_pixels). Default: preprocessor_config.json's." };
    public Option<int?> MaxPixels { get; } = new("--max-pixels") { Description = "Largest image area in pixels after resizing (the processor's max_pixels; lower it to save memory and time). Default: preprocessor_config.json's." };
    public Option<double?> Fps { get; } = new("--fps") { Description = $"Video frames sampled per second of video. Default: {VideoOptions.DefaultFps}." };
    public Option<int?> MaxFrames { get; } = new("--max-frames") { Description = $"At most this many frames per video. Default: {VideoOptions.DefaultMaxFrames}." };
    public Option<string?> Device { get; } = DeviceOption.Create();
    public Option<string> DType { get; } = DTypeFlag.Create();
    public KernelFlags Kernels { get; } = new();
    public StrictFlag Strict { get; } = new();

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Model, System, MaxNewTokens, Temperature, TopK, TopP, RepetitionPenalty, Seed, MinPixels, MaxPixels, Fps, MaxFrames, Device, DType })
            command.Options.Add(option);
        Kernels.AddTo(command);
        Strict.AddTo(command);
    }

    public SamplingOverrides Overrides(ParseResult parse) => new()
    {
        Temperature = parse.GetValue(Temperature),
        TopK = parse.GetValue(TopK),
        TopP = parse.GetValue(TopP),
        RepetitionPenalty = parse.GetValue(RepetitionPenalty),
        Seed = parse.GetValue(Seed),
    };

    public VideoOptions Video(ParseResult parse)
    {
        var fps = parse.GetValue(Fps);
        var maxFrames = parse.GetValue(MaxFrames);
        if (fps is { } f && (!(f > 0) || double.IsInfinity(f))) throw new ModelException($"--fps must be a positive number, got {f}");
        if (maxFrames is < VideoOptions.FrameFactor) throw new ModelException($"--max-frames must be ≥ {VideoOptions.FrameFactor} (frames come in pairs), got {maxFrames}");
        return new VideoOptions { Fps = fps, MaxFrames = maxFrames };
    }

    /// <summary>
    /// Loads everything an answer needs from <paramref name="modelDir"/>, checking the cheap files (tokenizer,
    /// template, generation config, processor bounds) before the weights. Notes go to stderr.
    /// </summary>
    public LoadedModel Load(ParseResult parse, string modelDir)
    {
        var device = DeviceOption.Read(parse, Device);
        bool bf16Weights = DTypeFlag.Bf16Weights(parse.GetValue(DType)!);
        if (parse.GetValue(MaxNewTokens) is < 0) throw new ModelException($"--max-new-tokens must be ≥ 0, got {parse.GetValue(MaxNewTokens)}");
        if (!Directory.Exists(modelDir)) throw new ModelException($"model directory not found: {modelDir}");
        string tokenizerPath = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new ModelException($"{modelDir}: no tokenizer.json (answering needs the tokenizer)");
        ChatTemplateFiles.Check(modelDir);
        var tokenizer = Qwen2Tokenizer.Load(tokenizerPath);
        string preprocessorPath = Path.Combine(modelDir, "preprocessor_config.json");
        var config = File.Exists(preprocessorPath) ? PreprocessorConfig.Load(preprocessorPath) : new PreprocessorConfig();
        config = config with
        {
            MinPixels = parse.GetValue(MinPixels) ?? config.MinPixels,
            MaxPixels = parse.GetValue(MaxPixels) ?? config.MaxPixels,
        };
        if (config.MinPixels <= 0 || config.MaxPixels < config.MinPixels)
            throw new ModelException($"need 0 < --min-pixels ({config.MinPixels}) ≤ --max-pixels ({config.MaxPixels})");
        var processor = new ImageProcessor(config);
        var (configEos, configPad) = ModelConfigIds(modelDir);
        var defaults = GenerationDefaults.Load(modelDir, configEos, configPad);
        var sampling = defaults.Resolve(Overrides(parse));
        int maxNew = parse.GetValue(MaxNewTokens) ?? defaults.MaxNewTokens ?? FallbackMaxNewTokens;

        var model = Qwen2VLModel.Load(modelDir, device, Kernels.Read(parse), bf16Weights);
        try
        {
            if (model.KernelNote is { } note) Console.Error.WriteLine(note);
            StrictFlag.Report(model.UnusedWeights, Strict.Read(parse), Console.Error);
            if (defaults.Source is not null) Console.Error.WriteLine($"(generation defaults: {defaults.Describe()})");
            var stop = ChatInputs.StopIds(tokenizer, defaults.EosTokenIds);
            var loaded = new LoadedModel(model, tokenizer, processor, new GenerationOptions(maxNew, sampling, stop, defaults.PadTokenId ?? model.PadTokenId));
            if (JitCompiles(device, parse)) loaded.WarmUp();
            return loaded;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>ILGPU compiles the GPU kernels from IL on ilgpu-cpu, and on cuda unless precompiled PTX is given.</summary>
    private bool JitCompiles(DeviceKind device, ParseResult parse) =>
        device == DeviceKind.IlgpuCpu || (device == DeviceKind.Cuda && Kernels.Read(parse).Directory is null);

    /// <summary>config.json's eos and pad ids, read as the model reads them (before the weights load).</summary>
    private static (IReadOnlyList<long> Eos, long? Pad) ModelConfigIds(string modelDir)
    {
        var config = CanonicalConfig.Load(Path.Combine(modelDir, "config.json"));
        IReadOnlyList<long> eos = !config.Has("eos_token_id") ? []
            : config.Root.GetProperty("eos_token_id").ValueKind == global::System.Text.Json.JsonValueKind.Array
                ? config.GetIntArray("eos_token_id").Select(i => (long)i).ToArray()
                : config.Root.GetProperty("eos_token_id").ValueKind == global::System.Text.Json.JsonValueKind.Null ? [] : [config.GetInt("eos_token_id")];
        return (eos, config.Has("pad_token_id") ? config.GetInt("pad_token_id") : null);
    }
}

/// <summary>A model ready to answer: weights on the device, tokenizer, processor and the resolved generation settings.</summary>
internal sealed class LoadedModel(Qwen2VLModel model, Qwen2Tokenizer tokenizer, ImageProcessor processor, GenerationOptions options) : IDisposable
{
    public Qwen2VLModel Model { get; } = model;
    public Qwen2Tokenizer Tokenizer { get; } = tokenizer;
    public ImageProcessor Processor { get; } = processor;
    public GenerationOptions Options { get; } = options;

    /// <summary>
    /// ILGPU compiles each GPU kernel the first time it runs, which takes seconds on CUDA and minutes on ilgpu-cpu: say
    /// so before, then how long it took. A one-token prompt with a smallest image runs every kernel an answer uses.
    /// </summary>
    public void WarmUp()
    {
        Console.Error.WriteLine("(compiling the GPU kernels with ILGPU's JIT on first use…)");
        var clock = Stopwatch.StartNew();
        int side = Processor.Config.Factor;
        var image = new RgbImage(side, side, new byte[side * side * 3], "warm-up image");
        var conversation = new Conversation();
        conversation.AddUser("", [image]);
        var inputs = conversation.ToInputs(Tokenizer, Processor, addGenerationPrompt: false);
        TextGenerator.Generate(Model, inputs, Options with { MaxNewTokens = 2, Sampling = SamplingOptions.Greedy });
        Console.Error.WriteLine($"(GPU kernels JIT-compiled in {clock.Elapsed.TotalSeconds:0.0} s, including one warm-up pass; `qwen2vl compile` + --kernels avoids this on cuda)");
    }

    public void Dispose() => Model.Dispose();
}
