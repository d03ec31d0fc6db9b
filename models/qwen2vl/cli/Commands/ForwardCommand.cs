using System.CommandLine;
using System.Globalization;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Distributed;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;
using Qwen2VL.Runtime.Distributed;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>forward</c>: one forward pass of the compiled model over a safetensors file of inputs, written with the golden
/// fixtures' names and layouts. Without <c>--model</c> and <c>--inputs</c> it runs the embedded tiny model on the
/// embedded case-a inputs and prints how far each output is from transformers' numbers.
/// </summary>
internal static class ForwardCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Model directory (config.json + model.safetensors or a sharded index). Default: the embedded tiny model." };
        var inputs = new Option<string?>("--inputs") { Description = "input_ids, attention_mask, optional labels, pixel_values + image_grid_thw, pixel_values_videos + video_grid_thw. Default with the embedded model: its example inputs." };
        var output = new Option<string?>("--out") { Description = "Where to write the outputs (safetensors). Required with --inputs." };
        var generate = new Option<int?>("--generate") { Description = "Also generate N tokens greedily (generated_new_tokens [B, N]). Default: 0, or 8 for the embedded example." };
        var device = DeviceOption.Create();
        var withGrads = new Option<bool>("--grads") { Description = "Also run the backward pass and write grad.<checkpoint name> (f32) for every parameter; needs labels." };
        var recompute = new Option<bool>("--recompute") { Description = "With --grads: selective activation checkpointing (recompute norms, activations, softmax and rotary in the backward pass)." };
        var dtype = DTypeFlag.Create();
        var parallel = new ParallelFlags(zero: false);
        var command = new Command("forward", "Run the compiled model on a batch of inputs and write position ids, embeddings, hidden states, logits, loss.");
        foreach (var option in new Option[] { model, inputs, output, generate, device, withGrads, recompute, dtype }) command.Options.Add(option);
        parallel.AddTo(command);
        var kernels = new KernelFlags();
        kernels.AddTo(command);
        var strict = new StrictFlag();
        strict.AddTo(command);
        command.SetAction(parse => Run(
            parse.GetValue(model), parse.GetValue(inputs), parse.GetValue(output), parse.GetValue(generate), DeviceOption.Read(parse, device), parse.GetValue(withGrads),
            parse.GetValue(recompute), kernels.Read(parse), strict.Read(parse), parse.InvocationConfiguration.Error, parallel.Read(parse),
            DTypeFlag.Bf16Weights(parse.GetValue(dtype) ?? "f32")));
        return command;
    }

    /// <summary>The model's max_position_embeddings, when its config says.</summary>
    internal static int? MaxPositions(ModelConfig config) =>
        config.Has("max_position_embeddings") ? config.GetInt("max_position_embeddings") : null;

    /// <summary>The files of a model folder an output must not overwrite.</summary>
    internal static IEnumerable<string> ModelFiles(string modelDir) => Directory.Exists(modelDir)
        ? Directory.EnumerateFiles(modelDir).Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal))
        : [];

    private static int Run(string? modelDir, string? inputsPath, string? outPath, int? generate, DeviceKind device, bool withGrads, bool recompute, KernelOptions kernels, bool strict, TextWriter error,
        ParallelOptions parallel, bool bf16)
    {
        if (recompute && !withGrads)
            throw new ModelException("--recompute applies to the backward pass: use it with --grads");
        parallel.CheckWorld();
        if (parallel.IsParallel && !withGrads)
            throw new ModelException("--dp and --comm split the backward pass over ranks: use them with --grads");
        if (parallel.IsParallel && bf16)
            throw new ModelException("--dtype bf16 runs on one rank; --dp N needs --dtype f32");
        bool example = inputsPath is null;
        if (example && modelDir is not null)
            throw new ModelException("--inputs is required with --model (only the embedded model has example inputs)");
        if (!example && outPath is null)
            throw new ModelException("--out is required with --inputs");
        if (withGrads && kernels.NoJit && device == DeviceKind.Cuda)
            throw new ModelException("--no-jit covers the inference kernels; --grads also launches training kernels, which are not precompiled");
        if (generate is < 0)
            throw new ModelException($"--generate must be ≥ 0, got {generate}");
        modelDir ??= DefaultModel.Directory;
        inputsPath ??= DefaultModel.ExampleInputs;
        int steps = generate ?? (example ? 8 : 0);

        if (outPath is not null)
            OutputPath.CheckNotAnInput(outPath, "--out", [(inputsPath, "the --inputs file"),
                .. ModelFiles(modelDir).Select(f => (f, "a file of the model"))]);
        var batch = ForwardFiles.ReadInputs(inputsPath);
        if (parallel.IsParallel)
            return RunDataParallel(modelDir, batch, inputsPath, outPath!, steps, device, recompute, kernels, strict, error, parallel);
        using var qwen = Qwen2VLModel.Load(modelDir, device, kernels, bf16Weights: bf16);
        if (qwen.KernelNote is { } note) Console.Error.WriteLine(note);
        StrictFlag.Report(qwen.UnusedWeights, strict, error);
        InputLimits.Default.CheckTokens(batch.Seq, steps, MaxPositions(qwen.Config), "--generate");
        var result = qwen.Forward(batch);
        GenerationOutput? generated = steps == 0 ? null : TextGenerator.Generate(qwen, batch,
            new GenerationOptions(steps, SamplingOptions.Greedy, qwen.EosTokenIds, qwen.PadTokenId));
        Dictionary<string, float[]>? gradients = null;
        if (withGrads)
        {
            if (batch.Labels is null)
                throw new ModelException($"{inputsPath}: --grads needs 'labels' in the inputs");
            using var sink = qwen.CreateGradients();
            qwen.Recompute = recompute;
            qwen.ForwardBackward(batch, sink);
            gradients = sink.Gradients.ToDictionary(g => g.Key, g => qwen.Context.Download(g.Value));
        }
        if (outPath is not null)
        {
            ForwardFiles.WriteOutputs(outPath, result, generated, gradients, name => qwen.ParameterShape(name));
            Console.WriteLine($"wrote {outPath}");
        }
        if (!example) return 0;

        using var expected = SafetensorsFile.Open(DefaultModel.ExampleExpected);
        var rows = GoldenComparison.Compare(result, generated, batch.MaskOrOnes(), expected);
        PrintTable(rows, qwen.Context.DeviceName);
        return rows.All(r => r.Passed) ? 0 : 1;
    }

    /// <summary>
    /// <c>forward --grads --dp N</c>: every rank runs the backward pass of its rows of the batch, the gradients are
    /// reduced in buckets as the layers finish, and rank 0 writes the forward outputs of the whole batch with the
    /// data-parallel loss and the reduced gradients (the same numbers one device gives, within float rounding).
    /// </summary>
    private static int RunDataParallel(string modelDir, ForwardInputs batch, string inputsPath, string outPath, int steps, DeviceKind device,
        bool recompute, KernelOptions kernels, bool strict, TextWriter error, ParallelOptions parallel)
    {
        if (batch.Labels is null)
            throw new ModelException($"{inputsPath}: --grads needs 'labels' in the inputs");
        // The inference model (rank 0 writes its forward outputs) is loaded first, so bad input fails before any rank trains.
        using var qwen = Qwen2VLModel.Load(modelDir, device, kernels);
        StrictFlag.Report(qwen.UnusedWeights, strict, error);
        InputLimits.Default.CheckTokens(batch.Seq, steps, MaxPositions(qwen.Config), "--generate");
        var reduced = CommLauncher.Run(parallel.Backend, parallel.DataParallel, parallel.Layout, comm =>
        {
            using var training = Qwen2VLModel.LoadForTraining(modelDir, device, []);
            training.Recompute = recompute;
            using var group = new DataParallelGroup(training, comm, zero: false, parallel.Overlap, parallel.BucketElements);
            var share = group.Share(training, batch);
            var (loss, _) = group.AccumulateGradients(training, [share is null ? null : (share, null)]);
            if (comm.Rank != 0) return null;
            var parameters = training.Parameters!;
            var grads = parameters.Parameters.Where(p => p.Trainable)
                .ToDictionary(p => p.Name, p => training.Context.Download(parameters.Grad(p.Name)));
            return new { Loss = loss, Grads = grads };
        });
        if (reduced is null) return 0; // not rank 0: rank 0 writes
        var result = qwen.Forward(batch) with { Loss = (float)reduced.Loss };
        GenerationOutput? generated = steps == 0 ? null : TextGenerator.Generate(qwen, batch,
            new GenerationOptions(steps, SamplingOptions.Greedy, qwen.EosTokenIds, qwen.PadTokenId));
        ForwardFiles.WriteOutputs(outPath, result, generated, reduced.Grads, name => qwen.ParameterShape(name));
        Console.WriteLine($"wrote {outPath}");
        return 0;
    }

    private static void PrintTable(List<ComparisonRow> rows, string deviceName)
    {
        Console.WriteLine($"Embedded tiny Qwen2-VL, example 'a_image_text' on {deviceName}, against Hugging Face transformers 4.49 (float32):");
        Console.WriteLine();
        int nameWidth = Math.Max(6, rows.Max(r => r.Name.Length)), shapeWidth = Math.Max(5, rows.Max(r => r.Shape.Length));
        Console.WriteLine($"  {"tensor".PadRight(nameWidth)}  {"shape".PadRight(shapeWidth)}  {"max |diff|",-12}  {"tolerance",-10}  result");
        foreach (var r in rows)
        {
            string diff = r.Exact ? (r.MaxDiff == 0 ? "exact" : $"{r.MaxDiff:0} differ") : r.MaxDiff.ToString("0.00E+00", CultureInfo.InvariantCulture);
            string tolerance = r.Exact ? "exact" : r.Tolerance.ToString("0E+00", CultureInfo.InvariantCulture);
            Console.WriteLine($"  {r.Name.PadRight(nameWidth)}  {r.Shape.PadRight(shapeWidth)}  {diff,-12}  {tolerance,-10}  {(r.Passed ? "ok" : "MISMATCH")}");
        }
        Console.WriteLine();
        Console.WriteLine(rows.All(r => r.Passed) ? "All outputs match." : "Some outputs do not match.");
    }
}

/// <summary>Where the embedded default model (the tiny fixture model, copied next to the binary) lives.</summary>
internal static class DefaultModel
{
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "default-model");
    public static string ExampleInputs => Path.Combine(Directory, "example", "inputs.safetensors");
    public static string ExampleExpected => Path.Combine(Directory, "example", "expected.safetensors");
    public static string ExampleImage => Path.Combine(Directory, "example", "image_0.png");
    public static string FixtureDirectory => Directory;

    /// <summary>The trained shapes model (models/qwen2vl/default-model): what generate answers with by default.</summary>
    public static string ShapesDirectory => Path.Combine(AppContext.BaseDirectory, "shapes-model");
    public static string ShapesImage => Path.Combine(ShapesDirectory, "sample.png");
    public const string ShapesQuestion = "What colour is the shape?";
}
