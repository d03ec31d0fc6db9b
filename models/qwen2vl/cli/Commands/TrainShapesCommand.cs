using System.CommandLine;
using System.Diagnostics;
using Qwen2VL.Model.Training;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>train-shapes</c>: the one command that makes the embedded default model — synthetic shapes data, its tokenizer,
/// a fresh small Qwen2-VL, training from scratch on the CPU, then accuracy on 200 freshly generated held-out questions.
/// </summary>
internal static class TrainShapesCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "shapes-run", Description = "Work directory (data, checkpoints, logs)." };
        var samples = new Option<int>("--samples") { DefaultValueFactory = _ => 30000, Description = "Training questions to generate." };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 6000, Description = "Optimizer steps." };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 1e-3f };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 7, Description = "Seed of the training data and the initial weights." };
        var evalCount = new Option<int>("--eval") { DefaultValueFactory = _ => 200, Description = "Held-out questions (generated with another seed)." };
        var command = new Command("train-shapes", "Make the embedded default model: generate shapes VQA data, train a small Qwen2-VL from scratch, evaluate.");
        foreach (var o in new Option[] { output, samples, steps, batch, lr, seed, evalCount })
            command.Options.Add(o);
        command.SetAction(parse =>
        {
            var outDir = Path.GetFullPath(parse.GetValue(output)!);
            var clock = Stopwatch.StartNew();
            var (modelDir, data) = File.Exists(Path.Combine(outDir, "init", "model.safetensors"))
                ? (Path.Combine(outDir, "init"), Path.Combine(outDir, "data", "data.jsonl"))
                : ShapesRecipe.Prepare(outDir, parse.GetValue(samples), parse.GetValue(seed));
            var final = TrainCommand.Train(modelDir, new TrainOptions
            {
                DataPath = data, OutDir = Path.Combine(outDir, "run"), MaxSteps = parse.GetValue(steps), BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr), WarmupSteps = 50, SaveEvery = 250, Seed = parse.GetValue(seed),
            });
            Console.WriteLine($"trained in {clock.Elapsed.TotalMinutes:F1} min: {final}");
            var (accuracy, wrong) = ShapesRecipe.Evaluate(final, parse.GetValue(evalCount), parse.GetValue(seed) + 1000, Path.Combine(outDir, "heldout"));
            Console.WriteLine($"held-out accuracy: {accuracy:P1} on {parse.GetValue(evalCount)} questions (seed {parse.GetValue(seed) + 1000})");
            foreach (var type in wrong.GroupBy(w => w.Item.Type))
                Console.WriteLine($"  wrong {type.Key}: {type.Count()}");
            foreach (var (item, answer) in wrong.Take(10))
                Console.WriteLine($"  {item.Question} -> '{answer}' (expected '{item.Answer}')");
            return 0;
        });
        return command;
    }
}
