using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training;

/// <summary>
/// How the embedded default model is made: a synthetic shapes VQA set, its BPE tokenizer, a freshly initialised
/// small Qwen2-VL (<see cref="ShapesModelConfig"/>), training from scratch on the CPU, and an accuracy check on
/// freshly generated held-out questions (another seed).
/// </summary>
public static class ShapesRecipe
{
    /// <summary>Generates the data and an initial model under <paramref name="workDir"/>; returns (model dir, data jsonl).</summary>
    public static (string ModelDir, string Data) Prepare(string workDir, int samples, int seed)
    {
        var dataDir = Path.Combine(workDir, "data");
        ShapesDataset.Generate(samples, seed, dataDir);
        var modelDir = Path.Combine(workDir, "init");
        ModelInit.Write(modelDir, ShapesModelConfig.Json, seed);
        ShapesTokenizer.Build(Path.Combine(modelDir, "tokenizer.json"));
        File.WriteAllText(Path.Combine(modelDir, "preprocessor_config.json"), PreprocessorJson);
        return (modelDir, Path.Combine(dataDir, "data.jsonl"));
    }

    /// <summary>The processor settings: the CLIP constants and patch sizes of Qwen2-VL, pixels bounded for 56–112 px images.</summary>
    public const string PreprocessorJson = """
        {
          "min_pixels": 3136, "max_pixels": 12544, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
          "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
          "rescale_factor": 0.00392156862745098, "do_rescale": true, "do_normalize": true,
          "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor"
        }
        """;

    /// <summary>Greedy answers to <paramref name="count"/> fresh questions (seed <paramref name="seed"/>); returns the fraction right.</summary>
    public static (double Accuracy, IReadOnlyList<(ShapesItem Item, string Answer)> Wrong) Evaluate(string modelDir, int count, int seed, string workDir)
    {
        var items = ShapesDataset.Generate(count, seed, workDir);
        using var model = Qwen2VLModel.Load(modelDir, DeviceKind.Cpu);
        var tokenizer = Qwen2Tokenizer.Load(Path.Combine(modelDir, "tokenizer.json"));
        var processor = ImageProcessor.Load(Path.Combine(modelDir, "preprocessor_config.json"));
        var stop = ChatInputs.StopIds(tokenizer, model.EosTokenIds);
        var wrong = new List<(ShapesItem, string)>();
        foreach (var item in items)
        {
            var answer = Answer(model, tokenizer, processor, stop, RgbImage.Load(Path.Combine(workDir, item.ImagePath)), item.Question);
            if (!ShapesDataset.Score(answer, item.Answer))
                wrong.Add((item, answer));
        }
        return (1.0 - (double)wrong.Count / items.Count, wrong);
    }

    /// <summary>The model's greedy answer to a question about an image (at most a few tokens).</summary>
    public static string Answer(Qwen2VLModel model, Qwen2Tokenizer tokenizer, ImageProcessor processor, IReadOnlyList<long> stop,
        RgbImage image, string question, int maxNewTokens = 4)
    {
        var inputs = ChatInputs.Build(tokenizer, processor, [image], [], question);
        var output = TextGenerator.Generate(model, inputs, new GenerationOptions(maxNewTokens, SamplingOptions.Greedy, stop, model.PadTokenId));
        return tokenizer.Decode(output.NewTokens.Select(t => (int)t), skipSpecialTokens: true);
    }
}
