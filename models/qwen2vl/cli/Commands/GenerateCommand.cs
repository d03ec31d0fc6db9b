using System.CommandLine;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>generate</c>: answers a prompt about images (and GIF videos) with the compiled model, streaming the text as it
/// is generated. The model directory must hold tokenizer.json; preprocessor_config.json is optional (defaults).
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Model directory (config.json, weights, tokenizer.json). Default: the embedded shapes model (a small Qwen2-VL trained here on synthetic coloured-shape questions)." };
        var images = new Option<string[]>("--image") { Description = "Image file (PNG, JPEG, ...); repeat for several.", AllowMultipleArgumentsPerToken = true };
        var videos = new Option<string[]>("--video") { Description = "Animated GIF used as a video; repeat for several.", AllowMultipleArgumentsPerToken = true };
        var prompt = new Option<string?>("--prompt") { Description = "The user's question. Without --model, --image and --prompt: the embedded example image and \"Describe this image.\"" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "At most this many new tokens.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy (default); otherwise sample at this temperature." };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0 = off)." };
        var topP = new Option<double>("--top-p") { Description = "Sample among the most likely tokens holding probability p (1 = off).", DefaultValueFactory = _ => 1.0 };
        var penalty = new Option<double>("--repetition-penalty") { Description = "Penalty on tokens already present (1 = off).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int?>("--seed") { Description = "Seed of the sampling draws." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or ilgpu-cpu", DefaultValueFactory = _ => "cpu" };
        var dtype = DTypeFlag.Create();
        var command = new Command("generate", "Answer a prompt about images / videos, streaming the generated text.");
        foreach (var option in new Option[] { model, images, videos, prompt, maxNew, temperature, topK, topP, penalty, seed, device, dtype })
            command.Options.Add(option);
        var kernels = new KernelFlags();
        kernels.AddTo(command);
        command.SetAction(parse =>
        {
            var sampling = new SamplingOptions
            {
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                RepetitionPenalty = parse.GetValue(penalty),
                Seed = parse.GetValue(seed),
            };
            var (imagePaths, videoPaths, question) = (parse.GetValue(images) ?? [], parse.GetValue(videos) ?? [], parse.GetValue(prompt));
            if (question is null)
            {
                // The README's main command: the embedded model answers about the embedded example image.
                if (parse.GetValue(model) is not null || imagePaths.Length > 0 || videoPaths.Length > 0)
                    throw new ModelException("--prompt is required");
                (imagePaths, question) = ([DefaultModel.ShapesImage], DefaultModel.ShapesQuestion);
                Console.Error.WriteLine($"(embedded shapes model; image {DefaultModel.ShapesImage}; prompt \"{question}\")");
            }
            return Run(parse.GetValue(model) ?? DefaultModel.ShapesDirectory, imagePaths, videoPaths,
                question, parse.GetValue(maxNew), sampling, parse.GetValue(device)!, kernels.Read(parse), DTypeFlag.Bf16Weights(parse.GetValue(dtype)!));
        });
        return command;
    }

    private static int Run(string modelDir, string[] imagePaths, string[] videoPaths, string prompt, int maxNewTokens,
        SamplingOptions sampling, string deviceName, KernelOptions kernels, bool bf16Weights)
    {
        var device = DeviceKinds.Parse(deviceName);
        sampling.Validate();
        if (maxNewTokens < 0) throw new ModelException($"--max-new-tokens must be ≥ 0, got {maxNewTokens}");
        if (!Directory.Exists(modelDir)) throw new ModelException($"model directory not found: {modelDir}");
        string tokenizerPath = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new ModelException($"{modelDir}: no tokenizer.json (generate needs the tokenizer)");
        var tokenizer = Qwen2Tokenizer.Load(tokenizerPath);
        string preprocessorPath = Path.Combine(modelDir, "preprocessor_config.json");
        var processor = File.Exists(preprocessorPath) ? ImageProcessor.Load(preprocessorPath) : new ImageProcessor(new PreprocessorConfig());
        var images = imagePaths.Select(p => RgbImage.Load(p)).ToList();
        var videos = videoPaths.Select(p => VideoLoader.LoadGif(p)).ToList();

        var inputs = ChatInputs.Build(tokenizer, processor, images, videos, prompt);
        using var qwen = Qwen2VLModel.Load(modelDir, device, kernels, bf16Weights);
        if (qwen.KernelNote is { } note) Console.Error.WriteLine(note);
        var stream = new TokenStreamDecoder(tokenizer, skipSpecialTokens: true);
        var options = new GenerationOptions(maxNewTokens, sampling, ChatInputs.StopIds(tokenizer, qwen.EosTokenIds), qwen.PadTokenId);
        TextGenerator.Generate(qwen, inputs, options, (_, tokens) => Console.Write(stream.Add(checked((int)tokens[0]))));
        Console.WriteLine(stream.Flush());
        return 0;
    }
}
