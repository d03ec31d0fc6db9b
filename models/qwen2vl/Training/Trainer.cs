using System.Diagnostics;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Distributed;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Model.Training;

/// <summary>One optimizer step's numbers, for the progress display and the loss log.</summary>
public sealed record TrainStepReport(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double GradNorm, long Tokens)
{
    /// <summary>Data parallelism: seconds the gradient bucket reductions took, and how many of them the step waited for after its backward pass.</summary>
    public double CommunicationSeconds { get; init; }
    public double ExposedCommunicationSeconds { get; init; }

    /// <summary>Bytes of AdamW state (m and v) this rank holds.</summary>
    public long OptimizerStateBytes { get; init; }
}

/// <summary>
/// The training loop: JSONL conversations → encoded samples → shuffled batches (right padding, or packed rows with
/// <see cref="TrainOptions.Pack"/>) → the model's
/// generated forward and backward passes → global-norm clipping → AdamW with a cosine schedule → checkpoints
/// (weights in Hugging Face layout, optimizer moments, step, data position) written atomically every
/// <see cref="TrainOptions.SaveEvery"/> steps and at the end. A run started on an output folder that holds a
/// checkpoint resumes from it and continues exactly as an uninterrupted run would.
/// </summary>
public static class Trainer
{
    /// <summary>
    /// Trains; <paramref name="report"/> hears every optimizer step, and <paramref name="started"/> (start step, total
    /// steps of the schedule) once, before the first step — the total of an <c>--epochs</c> run is only known here.
    /// </summary>
    public static string Run(string modelDir, TrainOptions o, Action<TrainStepReport>? report = null, Action<long, long>? started = null)
    {
        Directory.CreateDirectory(o.OutDir);
        using var held = OutputLock.Acquire(o.OutDir);
        return RunLocked(modelDir, o, report, started);
    }

    /// <summary><see cref="Run"/> for a caller that already holds <paramref name="o"/>'s output lock (<see cref="OutputLock"/>).</summary>
    /// <remarks>
    /// With <paramref name="comm"/> this is one rank of a data-parallel group (<see cref="TrainOptions.DataParallel"/>):
    /// every rank reads the same data and takes its share of each micro-batch, gradients are reduced in buckets during
    /// the backward pass, and with <see cref="TrainOptions.Zero"/> = 1 each rank keeps 1/DP of the AdamW state. Rank 0
    /// alone holds the output lock and writes loss.csv, loss.png and the checkpoints (full parameters and optimizer
    /// state under their names, so any layout resumes them); the other ranks call this without the lock.
    /// </remarks>
    public static string RunLocked(string modelDir, TrainOptions o, Action<TrainStepReport>? report = null, Action<long, long>? started = null,
        ICommunicator? comm = null)
    {
        var resume = TrainingCheckpoint.LoadLatest(o.OutDir);
        var sourceDir = resume is not null ? TrainingCheckpoint.LatestPath(o.OutDir)! : modelDir;
        // Everything a checkpoint carries besides the weights is read now, once: saves never go back to sourceDir.
        var files = RunFiles.Read(sourceDir);
        var style = WeightStyle.Detect(sourceDir); // written back in the dtype, names and shards it came in
        using var model = Qwen2VLModel.LoadForTraining(sourceDir, o.Device, o.Freeze, o.Bf16);
        model.Recompute = o.Recompute;
        if (model.UnusedWeights is { Count: > 0 } unused)
        {
            var line = $"the checkpoint holds {unused.Count} tensor(s) the model does not use: {string.Join(", ", unused.Take(5))}{(unused.Count > 5 ? ", …" : "")}";
            if (o.Strict) throw new WeightException(line + " (--strict)");
            o.Warnings?.WriteLine("warning: " + line);
        }
        var parameters = model.Parameters!;
        var ctx = model.Context;
        o.Notes?.WriteLine(OptimizerMemory.Line(parameters));
        using var dp = comm is null ? null : new DataParallelGroup(model, comm, o.Zero == 1, o.Overlap, o.BucketElements);
        bool writer = comm is null || comm.Rank == 0;

        var tokenizerPath = Path.Combine(sourceDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new ModelException($"{sourceDir}: no tokenizer.json (training needs the tokenizer)");
        var tokenizer = Qwen2Tokenizer.Load(tokenizerPath);
        var preprocessorPath = Path.Combine(sourceDir, "preprocessor_config.json");
        var processor = File.Exists(preprocessorPath) ? ImageProcessor.Load(preprocessorPath) : new ImageProcessor(new PreprocessorConfig());
        var encoder = new SampleEncoder(tokenizer, processor, new SampleEncoderOptions { MinPixels = o.MinPixels, MaxPixels = o.MaxPixels });
        var samples = TrainingJsonl.Read(o.DataPath).Select(encoder.Encode).ToList();
        if (samples.Count == 0) throw new ModelException($"{o.DataPath}: no samples");

        var loader = new DataLoader(samples.Count, o.BatchSize, (ulong)o.Seed, dropLast: samples.Count >= o.BatchSize);
        long totalSteps = o.MaxSteps ?? (long)o.Epochs * loader.BatchesPerEpoch / o.GradientAccumulation;
        var adam = new AdamW(weightDecay: o.WeightDecay);
        long step = 0;
        if (resume is not null)
        {
            Restore(ctx, parameters, resume, adam, loader, dp);
            step = resume.Trainer.Step;
        }
        long padId = model.PadTokenId ?? 0;
        using var log = !writer ? null : step == 0 ? LossLog.Create(Path.Combine(o.OutDir, "loss.csv")) : LossLog.Resume(Path.Combine(o.OutDir, "loss.csv"), step);
        var sink = new ParameterGradients(parameters);
        // The history feeds loss.png and the checkpoints, which rank 0 alone writes (the other ranks must not read
        // loss.csv while rank 0 rewrites it).
        var history = !writer ? new List<(int Step, double Loss)>()
            : new List<(int Step, double Loss)>(LossLog.Read(Path.Combine(o.OutDir, "loss.csv")).Select(r => ((int)r.Step, r.Loss)));

        long stopAt = Math.Min(totalSteps, o.StopAfter ?? totalSteps);
        if (totalSteps < 1)
            throw new ModelException($"{o.DataPath}: {samples.Count} samples in batches of {o.BatchSize} × {o.GradientAccumulation} accumulated make no optimizer step in {o.Epochs} epoch(s)");
        if (resume is not null && step >= totalSteps)
        {
            o.Notes?.WriteLine($"nothing to do: {o.OutDir} is already at step {step} and this run has {totalSteps} steps (give a larger --steps or --epochs to train further)");
            return TrainingCheckpoint.LatestPath(o.OutDir)!;
        }
        if (resume is not null)
            o.Notes?.WriteLine($"resuming from step {step} ({TrainingCheckpoint.FolderName(step)} in {o.OutDir}) to step {totalSteps}");
        if (o.WarmupSteps >= totalSteps)
            o.Warnings?.WriteLine($"warning: --warmup {o.WarmupSteps} is not below the run's {totalSteps} steps: the learning rate only rises and never reaches its cosine decay");
        started?.Invoke(Math.Min(step, totalSteps), totalSteps);
        while (step < stopAt)
        {
            parameters.ZeroGrads();
            double loss;
            long tokens;
            if (dp is null)
            {
                var micro = Enumerable.Range(0, o.GradientAccumulation)
                    .Select(_ => MicroBatch(model, loader.NextBatch().Select(i => samples[i]).ToList(), o, padId)).ToList();
                loss = AccumulateGradients(model, sink, micro);
                tokens = micro.Sum(m => (long)m.Inputs.Batch * m.Inputs.Seq);
            }
            else
            {
                // Every rank draws the whole batch (same loader, same seed) and runs its block of it.
                var micro = Enumerable.Range(0, o.GradientAccumulation).Select(_ =>
                {
                    var mine = dp.Share(loader.NextBatch());
                    return mine.Count == 0 ? ((ForwardInputs, long[]?)?)null : MicroBatch(model, mine.Select(i => samples[i]).ToList(), o, padId);
                }).ToList();
                (loss, tokens) = dp.AccumulateGradients(model, micro);
            }
            var norm = dp?.Optimizer.ClipToNorm(o.ClipNorm) ?? GradClip.ClipToNorm(ctx, parameters.AllGrads, o.ClipNorm);
            if (!double.IsFinite(loss) || !double.IsFinite(norm))
                throw Diverged(o, step + 1, $"the loss is {loss} and the gradient norm {norm}");
            var lr = LearningRate.CosineWithWarmup((int)step, (int)Math.Min(o.WarmupSteps, totalSteps), (int)totalSteps, o.LearningRate, o.MinLearningRate);
            if (dp is null) adam.Update(ctx, parameters, lr);
            else dp.Optimizer.Update(adam, lr);
            step++;
            log?.Append(new LossLogRow(step, loader.Position.Epoch, loss, lr, tokens, norm));
            history.Add(((int)step, loss));
            report?.Invoke(new TrainStepReport(step, totalSteps, loader.Position.Epoch, loss, lr, norm, tokens)
            {
                CommunicationSeconds = dp?.Buckets.CommunicationSeconds ?? 0,
                ExposedCommunicationSeconds = dp?.Buckets.ExposedSeconds ?? 0,
                OptimizerStateBytes = dp?.Optimizer.StateBytes ?? 2L * parameters.MomentCount * sizeof(float),
            });
            if (step % o.SaveEvery == 0 || step == stopAt)
                Save(o, files, style, model, parameters, adam, loader, step, history, dp, writer);
        }
        if (writer) LossCurve.WritePng(Path.Combine(o.OutDir, "loss.png"), history);
        return TrainingCheckpoint.LatestPath(o.OutDir) ?? o.OutDir;
    }

    /// <summary>
    /// Gradient accumulation: the forward and backward passes of one optimizer step's micro-batches, each gradient
    /// weighted by the micro-batch's share of the step's label tokens, so the sum in <paramref name="grads"/> is the
    /// gradient of the mean loss over all those tokens — what one batch holding every sample gives, up to float
    /// rounding, even when the micro-batches hold different numbers of label tokens. Returns that mean loss (NaN when
    /// no micro-batch has a label token).
    /// </summary>
    public static double AccumulateGradients(Qwen2VLModel model, IGradientSink grads, IReadOnlyList<(ForwardInputs Inputs, long[]? Positions)> micro)
    {
        var counts = micro.Select(m => LabelTokens(m.Inputs)).ToList();
        long total = counts.Sum(c => (long)c);
        if (total == 0) return double.NaN;
        double loss = 0;
        for (int k = 0; k < micro.Count; k++)
        {
            if (counts[k] == 0) continue; // no label token: no loss, no gradient
            double share = (double)counts[k] / total;
            var result = model.ForwardBackward(micro[k].Inputs, grads, micro[k].Positions, gradScale: (float)share);
            loss += result.Loss * share;
        }
        return loss;
    }

    /// <summary>Label tokens the shifted loss counts: labels ≠ −100 past the first position of each row.</summary>
    public static int LabelTokens(ForwardInputs inputs)
    {
        int count = 0;
        var labels = inputs.Labels ?? throw new ModelException("training needs labels (−100 where no token is predicted)");
        for (int i = 0; i < labels.Length; i++)
            if (i % inputs.Seq != 0 && labels[i] != EncodedSample.IgnoreIndex) count++;
        return count;
    }

    /// <summary>
    /// One micro-batch as model inputs: one sample per row, right-padded; or with <see cref="TrainOptions.Pack"/> the
    /// samples packed first-fit into rows of at most <see cref="TrainOptions.MaxLength"/> tokens, each sample a segment
    /// of the attention mask with its own M-RoPE positions (null positions: the model computes them from the mask).
    /// </summary>
    public static (ForwardInputs Inputs, long[]? Positions) MicroBatch(Qwen2VLModel model, IReadOnlyList<EncodedSample> batch,
        TrainOptions o, long padId)
    {
        if (!o.Pack)
            return (Batching.Collate(batch, PadSide.Right, padId), null);
        var inputs = Packing.ToInputs(Packing.Pack(batch, o.MaxLength), padId);
        return (inputs, PackedRopeIndex.Compute(inputs, model.TokenIds, model.SpatialMerge));
    }

    /// <summary>
    /// Non-finite numbers stop the run: nothing is saved (so nothing is pruned), and the message names the last
    /// checkpoint, which holds finite weights.
    /// </summary>
    private static ModelException Diverged(TrainOptions o, long step, string what)
    {
        var last = TrainingCheckpoint.LatestPath(o.OutDir);
        return new ModelException($"training diverged at step {step}: {what}; nothing was saved for it " +
                                  (last is null ? "(no checkpoint yet)" : $"(the last good checkpoint is {Path.GetFileName(last)})") +
                                  $"; lower --lr (now {o.LearningRate}) or check the data");
    }

    private static void Save(TrainOptions o, RunFiles files, WeightStyle style, Qwen2VLModel model, ParameterSet parameters, AdamW adam,
        DataLoader loader, long step, List<(int Step, double Loss)> history, DataParallelGroup? dp, bool writer)
    {
        var ctx = model.Context;
        // Under ZeRO-1 the moments are gathered from their owners (every rank takes part); rank 0 writes.
        var (m, v) = dp?.Optimizer.FullMoments() ?? (ctx.Download(parameters.MomentM), ctx.Download(parameters.MomentV));
        if (!writer) return;
        var all = ctx.Download(parameters.AllWeights);
        if (!AllFinite(all) || !AllFinite(m) || !AllFinite(v))
            throw Diverged(o, step, "the weights or optimizer moments hold NaN or infinity");
        var weights = parameters.Parameters
            .Where(p => !(model.TiedHead && p.Name == "lm_head.weight"))
            .Select(p => (style.StoredName(p.Name), all.AsSpan(p.Offset, p.Length).ToArray(), p.Shape)).ToList();
        var layout = parameters.Parameters.Where(p => p.Trainable).Select(p => new OptimizerSlot(p.Name, p.Offset, p.Shape)).ToList();
        // A narrower weights file keeps the exact f32 masters in the optimizer file, so resuming loses nothing.
        var optimizer = new OptimizerState(m, v, layout) { Master = style.DType == CheckpointDType.F32 ? null : all };
        var content = new CheckpointContent(weights, files.ConfigJson, optimizer,
            new TrainerState
            {
                Step = step,
                Epoch = loader.Position.Epoch,
                DataPosition = new DataPosition(loader.Position.Epoch, loader.Position.Index),
                RngState = [],
                LearningRateSchedule = new Dictionary<string, double> { ["adam_step"] = adam.Step },
                LossHistory = history.Select(h => ((long)h.Step, h.Loss)).ToList(),
            }) { ExtraFiles = files.Extra };
        TrainingCheckpoint.Save(o.OutDir, content, new CheckpointOptions { KeepLast = 2, WeightsDType = style.DType, Shards = style.Shards });
    }

    private static void Restore(ComputeContext ctx, ParameterSet parameters, CheckpointContent resume, AdamW adam, DataLoader loader, DataParallelGroup? dp)
    {
        // The weights were loaded from the checkpoint folder itself; the optimizer moments and positions come back here.
        if (resume.Optimizer is { } optimizer)
        {
            var m = new float[parameters.TrainableEnd];
            var v = new float[parameters.TrainableEnd];
            foreach (var slot in optimizer.Layout)
            {
                if (!parameters.Parameters.Any(p => p.Name == slot.Name && p.Trainable)) continue;
                var info = parameters.Info(slot.Name);
                Array.Copy(optimizer.M, slot.Offset, m, info.Offset, info.Length);
                Array.Copy(optimizer.V, slot.Offset, v, info.Offset, info.Length);
            }
            if (dp is not null) dp.Optimizer.LoadMoments(m, v); // this rank's block under ZeRO-1
            else
            {
                ctx.CopyFrom(m, parameters.MomentM);
                ctx.CopyFrom(v, parameters.MomentV);
            }
            if (optimizer.Master is { } master)
            {
                if (master.Length != parameters.Length)
                    throw new ModelException($"{TrainingCheckpoint.FolderName(resume.Trainer.Step)}/optimizer.safetensors: master_weights has {master.Length} values, the model {parameters.Length}");
                if (!AllFinite(master))
                    throw new ModelException($"{TrainingCheckpoint.FolderName(resume.Trainer.Step)}/optimizer.safetensors: master_weights hold NaN or infinity");
                ctx.CopyFrom(master, parameters.AllWeights);
                if (parameters.Bf16Compute) parameters.RoundComputeWeights();
            }
        }
        if (resume.Trainer.LearningRateSchedule.TryGetValue("adam_step", out var adamStep))
        {
            // AdamW's bias correction divides by 1 − β^t: a t that is not the number of steps taken gives wrong or
            // non-finite updates, so a corrupt value is refused rather than trained on.
            if (adamStep != resume.Trainer.Step)
                throw new ModelException($"{TrainingCheckpoint.FolderName(resume.Trainer.Step)}/trainer_state.json: adam_step {adamStep} does not match global_step {resume.Trainer.Step}");
            adam.SetStep((int)adamStep);
        }
        if (resume.Optimizer is { } o && (!AllFinite(o.M) || !AllFinite(o.V)))
            throw new ModelException($"{TrainingCheckpoint.FolderName(resume.Trainer.Step)}/optimizer.safetensors: the moments hold NaN or infinity");
        if (resume.Weights.Any(w => !AllFinite(w.Data)))
            throw new ModelException($"{TrainingCheckpoint.FolderName(resume.Trainer.Step)}/model.safetensors: the weights hold NaN or infinity");
        loader.Restore(new LoaderPosition(resume.Trainer.DataPosition.Pass, resume.Trainer.DataPosition.Index));
    }

    private static bool AllFinite(float[] values)
    {
        foreach (float x in values)
            if (!float.IsFinite(x)) return false;
        return true;
    }

    /// <summary>The parameter set's gradient views as the generated Backward's gradient sink (frozen: null).</summary>
    private sealed class ParameterGradients(ParameterSet parameters) : IGradientSink
    {
        public DeviceTensor? GradientOf(string name) => parameters.IsTrainable(name) ? parameters.Grad(name) : null;
    }
}
