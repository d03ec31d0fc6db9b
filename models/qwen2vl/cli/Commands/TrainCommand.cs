using System.CommandLine;
using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Distributed;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>train</c>: trains a model on a JSONL of conversations (with images / videos), from a checkpoint (<c>--model</c>)
/// or from scratch (<c>--config tiny|shapes</c> with <c>--tokenizer</c>), showing loss, tokens/s and ETA, writing a
/// loss log (CSV), a loss-curve PNG and atomic checkpoints to <c>--out</c>; rerun on the same <c>--out</c> to resume.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Start from this model directory (config.json, weights, tokenizer.json)." };
        var config = new Option<string?>("--config") { Description = "Start from scratch with a built-in config: 'shapes' (the embedded model's) or 'tiny' (the fixture's)." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer.json for --config (default for 'shapes': the shapes tokenizer)." };
        var data = new Option<string>("--data") { Description = "Training conversations (JSONL: images, videos, messages).", Required = true };
        var output = new Option<string>("--out") { Description = "Output directory: checkpoints, loss.csv, loss.png. An existing checkpoint there is resumed.", Required = true };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 1, Description = "Passes over the data." };
        var steps = new Option<int?>("--steps") { Description = "Optimizer steps (overrides --epochs)." };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 8, Description = "Samples per micro-batch." };
        var accumulate = new Option<int>("--grad-accum", "--accumulate") { DefaultValueFactory = _ => 1, Description = "Micro-batches per optimizer step (gradients summed, each scaled by 1/N)." };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 1e-3f, Description = "Peak learning rate (cosine schedule with warmup)." };
        var minLr = new Option<float>("--min-lr") { DefaultValueFactory = _ => 1e-5f };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 20, Description = "Warmup steps." };
        var decay = new Option<float>("--weight-decay") { DefaultValueFactory = _ => 0.01f };
        var clip = new Option<float>("--clip") { DefaultValueFactory = _ => 1f, Description = "Global gradient-norm clip." };
        var freeze = new Option<string[]>("--freeze") { Description = "Freeze parameters by name pattern (e.g. 'visual.*'); repeatable.", AllowMultipleArgumentsPerToken = true };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
        var saveEvery = new Option<int>("--save-every") { DefaultValueFactory = _ => 200, Description = "Checkpoint every N steps (and at the end)." };
        var pack = new Option<bool>("--pack") { Description = "Pack each micro-batch's samples into rows of at most --max-length tokens (per-sample attention segments and M-RoPE positions)." };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 2048, Description = "Token budget of a packed row (with --pack)." };
        var bf16 = new Option<bool>("--bf16") { Description = "Compute with bf16 weights held in 16 bits (f32 master weights and AdamW moments in the optimizer; activations and gradients f32)." };
        var device = DeviceOption.Create();
        var strict = new Option<bool>("--strict") { Description = "Refuse a checkpoint holding tensors the model does not use (default: a warning listing them)." };
        var recompute = new Option<bool>("--recompute") { Description = "Selective activation checkpointing: recompute norms, activations, softmax and rotary in the backward pass instead of keeping them." };
        var parallel = new ParallelFlags(zero: true);
        var command = new Command("train", "Train (or fine-tune) a Qwen2-VL model on JSONL conversations.");
        parallel.AddTo(command);
        foreach (var o in new Option[] { model, config, tokenizer, data, output, epochs, steps, batch, accumulate, lr, minLr, warmup, decay, clip, freeze, seed, saveEvery, pack, maxLength, bf16, device, recompute, strict })
            command.Options.Add(o);
        command.SetAction(parse =>
        {
            var (stdout, stderr) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            var outDir = parse.GetValue(output)!;
            var layout = parallel.Read(parse);
            layout.CheckWorld();
            var options = new TrainOptions
            {
                DataPath = parse.GetValue(data)!, OutDir = outDir, Epochs = parse.GetValue(epochs), MaxSteps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch), GradientAccumulation = parse.GetValue(accumulate), LearningRate = parse.GetValue(lr),
                MinLearningRate = parse.GetValue(minLr), WarmupSteps = parse.GetValue(warmup), WeightDecay = parse.GetValue(decay),
                ClipNorm = parse.GetValue(clip), Freeze = parse.GetValue(freeze) ?? [], Seed = parse.GetValue(seed),
                SaveEvery = parse.GetValue(saveEvery), Device = DeviceOption.Read(parse, device),
                Pack = parse.GetValue(pack), MaxLength = parse.GetValue(maxLength), Bf16 = parse.GetValue(bf16),
                Recompute = parse.GetValue(recompute), Notes = stdout, Warnings = stderr, Strict = parse.GetValue(strict),
                DataParallel = layout.DataParallel, Zero = layout.Zero, Overlap = layout.Overlap, BucketElements = layout.BucketElements,
            };
            // Everything that can be checked without writing is checked first: a refused run writes nothing.
            Validate(options);
            var start = TrainStart.Parse(parse.GetValue(model), parse.GetValue(config), parse.GetValue(tokenizer), parse.GetValue(seed));
            string? final;
            if (!layout.IsParallel)
                final = TrainStart.InOutputFolder(outDir, (held, created) =>
                {
                    var modelDir = start.Prepare(outDir);
                    return Train(modelDir, options, stdout);
                });
            else
            {
                // One rank per thread or process. Rank 0 holds --out, prepares the start (init weights with --config),
                // shows the progress and writes; the others start once it is ready and write nothing.
                final = CommLauncher.Run(layout.Backend, layout.DataParallel, layout.Layout, comm => comm.Rank == 0
                    ? TrainStart.InOutputFolder(outDir, (held, created) =>
                    {
                        var modelDir = start.Prepare(outDir);
                        comm.Barrier();
                        return Train(modelDir, options, stdout, comm);
                    })
                    : AfterRankZero(comm, start.ModelDir ?? Path.Combine(outDir, "init"), options));
                if (final is null) return 0; // not rank 0
            }
            stdout.WriteLine($"checkpoint: {final}");
            stdout.WriteLine($"loss log: {Path.Combine(outDir, "loss.csv")}, curve: {Path.Combine(outDir, "loss.png")}");
            return 0;
        });
        return command;
    }

    /// <summary>Runs the trainer under the progress display (a live bar on a terminal, plain lines otherwise).</summary>
    internal static string Train(string modelDir, TrainOptions options, TextWriter? output = null, ICommunicator? comm = null)
    {
        string final = "";
        // In-process callers (tests) give their own writer: progress goes there as plain lines.
        var console = output is null || ReferenceEquals(output, Console.Out) ? null
            : Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
            {
                Out = new Spectre.Console.AnsiConsoleOutput(output), Interactive = Spectre.Console.InteractionSupport.No,
            });
        TrainingProgress.Run(0, options.MaxSteps ?? 1, p =>
            final = Trainer.RunLocked(modelDir, options, r => p.Report(r.Step, r.Loss, r.Tokens), p.Begin, comm), console);
        return final;
    }

    /// <summary>A rank other than 0: waits until rank 0 has prepared the start, then trains silently (notes stay on rank 0).</summary>
    private static string AfterRankZero(ICommunicator comm, string modelDir, TrainOptions options)
    {
        comm.Barrier();
        return Trainer.RunLocked(modelDir, options with { Notes = null, Warnings = null }, comm: comm);
    }

    private static void Validate(TrainOptions o)
    {
        if (!File.Exists(o.DataPath)) throw new ModelException($"training data not found: {o.DataPath}");
        // Parsed now (not only when the trainer reads it) so that a broken --data writes nothing to --out.
        TrainingJsonl.Read(o.DataPath);
        if (o.BatchSize < 1 || o.GradientAccumulation < 1 || o.Epochs < 1 || o.MaxSteps is < 1 || o.SaveEvery < 1 || o.MaxLength < 1)
            throw new ModelException("--batch, --grad-accum, --epochs, --steps, --save-every and --max-length must be ≥ 1");
        if (!(o.LearningRate > 0) || o.MinLearningRate < 0 || !(o.ClipNorm > 0))
            throw new ModelException("--lr and --clip must be > 0 and --min-lr ≥ 0");
    }
}
