using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Runtime.Distributed.Threads;
using Qwen2VL.Tests.Cli;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Distributed;

/// <summary>
/// <c>train --dp 2 --zero 1</c> under <c>mpirun -np 2</c> on the tiny fixture model (fresh weights, shapes questions)
/// follows the single-device loss curve within 1e-4 per step; resuming a run whose first steps were taken on one
/// device continues the same curve (the checkpoint holds full parameters and optimizer state, sharded on load); and the
/// other way round on thread ranks: a checkpoint written under <c>--dp 2 --zero 1</c> resumes on one device on the same
/// curve. Tolerance 1e-4 per step (the issue's): the ranks sum their rows' gradients in another order than one device
/// does (each rank's share, then the rank-order sum; the clipping norm from per-block sums of squares), so the
/// numbers differ by float32 rounding, which AdamW's normalised steps carry forward — not by any systematic amount.
/// Steps = <see cref="Steps"/>, not 50: each rank is a process on 2 shared cores.
/// </summary>
public sealed class ZeroTrainingTests(ITestOutputHelper log) : IDisposable
{
    private const int Steps = 12, StopAt = 6;
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-zero-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string[] Hyper = ["--batch", "4", "--lr", "3e-3", "--warmup", "2", "--seed", "3"];

    private TrainOptions Options(string data, string outDir) => new()
    {
        DataPath = data, OutDir = outDir, MaxSteps = Steps, BatchSize = 4, LearningRate = 3e-3f, WarmupSteps = 2, Seed = 3, SaveEvery = StopAt,
    };

    [Fact]
    public void ZeroOneOnTwoMpiRanksFollowsTheSingleDeviceCurveAndResumesOneDevicesCheckpoint()
    {
        ShapesDataset.Generate(24, 5, Path.Combine(_dir, "data"));
        var data = Path.Combine(_dir, "data", ShapesDataset.JsonlName);

        var single = Path.Combine(_dir, "single");
        var r = CliRunner.Run(["train", "--config", "tiny", "--data", data, "--out", single, "--steps", $"{Steps}", .. Hyper]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var init = Path.Combine(single, "init");
        var expected = LossLog.Read(Path.Combine(single, "loss.csv")).Select(x => x.Loss).ToArray();
        Assert.Equal(Steps, expected.Length);

        var zero = Path.Combine(_dir, "zero");
        var z = MpiRunner.Run(2, ["train", "--model", init, "--data", data, "--out", zero, "--steps", $"{Steps}", .. Hyper,
            "--dp", "2", "--zero", "1", "--bucket-mb", "0.05"]);
        Assert.True(z.ExitCode == 0, z.Stdout + z.Stderr);
        AssertSameCurve(expected, LossLog.Read(Path.Combine(zero, "loss.csv")).Select(x => x.Loss).ToArray(), "dp 2, zero 1");

        // First StopAt steps on one device (in process), then the rest with --dp 2 --zero 1 from its checkpoint.
        var resumed = Path.Combine(_dir, "resumed");
        Trainer.Run(init, Options(data, resumed) with { StopAfter = StopAt });
        Assert.Equal(StopAt, TrainingCheckpoint.LoadLatest(resumed)!.Trainer.Step);
        var c = MpiRunner.Run(2, ["train", "--model", init, "--data", data, "--out", resumed, "--steps", $"{Steps}", .. Hyper,
            "--save-every", $"{StopAt}", "--dp", "2", "--zero", "1"]);
        Assert.True(c.ExitCode == 0, c.Stdout + c.Stderr);
        AssertSameCurve(expected, LossLog.Read(Path.Combine(resumed, "loss.csv")).Select(x => x.Loss).ToArray(), "resumed with dp 2, zero 1");
    }

    [Fact]
    public void ZeroOneOnTwoThreadRanksWritesACheckpointOneDeviceContinues()
    {
        ShapesDataset.Generate(24, 5, Path.Combine(_dir, "data"));
        var data = Path.Combine(_dir, "data", ShapesDataset.JsonlName);
        var single = Path.Combine(_dir, "single");
        var r = CliRunner.Run(["train", "--config", "tiny", "--data", data, "--out", single, "--steps", $"{Steps}", .. Hyper]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var init = Path.Combine(single, "init");
        var expected = LossLog.Read(Path.Combine(single, "loss.csv")).Select(x => x.Loss).ToArray();

        // The first StopAt steps on two thread ranks with ZeRO-1 (rank 0 writes the checkpoint: full parameters, and
        // m and v gathered from both owners), then the rest on one device from that checkpoint.
        var mixed = Path.Combine(_dir, "mixed");
        var options = Options(data, mixed) with { StopAfter = StopAt, DataParallel = 2, Zero = 1, BucketElements = 1 << 14 };
        ThreadWorld.Run(2, comm => Trainer.RunLocked(init, comm.Rank == 0 ? options : options with { Notes = null, Warnings = null }, comm: comm));
        var written = TrainingCheckpoint.LoadLatest(mixed)!;
        Assert.Equal(StopAt, written.Trainer.Step);
        Assert.Equal(written.Optimizer!.M.Length, written.Optimizer.V.Length);
        Assert.Contains(written.Optimizer.V, x => x != 0); // both halves came back, not only rank 0's block
        Assert.Contains(written.Optimizer.V.AsSpan(written.Optimizer.V.Length / 2).ToArray(), x => x != 0);
        Trainer.Run(init, Options(data, mixed));
        AssertSameCurve(expected, LossLog.Read(Path.Combine(mixed, "loss.csv")).Select(x => x.Loss).ToArray(), "dp 2 zero 1 on threads, then one device");
    }

    private void AssertSameCurve(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(expected[i] - actual[i]);
            worst = Math.Max(worst, d);
            Assert.True(d <= 1e-4, $"{what}: step {i + 1} loss {actual[i]} vs single-device {expected[i]} (|diff| {d:E2})");
        }
        Assert.True(expected[^1] < expected[0], "the loss should fall over the run");
        log.WriteLine($"{what}: {expected.Length} steps, worst |loss diff| {worst:E2}; loss {expected[0]:F4} → {expected[^1]:F4}");
    }
}
