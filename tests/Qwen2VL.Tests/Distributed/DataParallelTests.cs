using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Training.Distributed;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Distributed.Threads;
using Qwen2VL.Tests.Cli;
using Qwen2VL.Tests.Compiled;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Distributed;

/// <summary>
/// <c>forward --grads --dp 2</c> on the batch-2 fixture case (two left-padded rows, one image each): each rank runs one
/// row, the gradients are reduced in small buckets while the backward pass runs, and the loss and every gradient match
/// transformers within the fixture tolerances (1e-5; 1e-5 + 1e-3·max|expected|) — on thread ranks, and under
/// <c>mpirun -np 2</c> through the CLI. Both ranks hold the same bits after the all-reduce, and on thread ranks the
/// loss and gradients also equal one device's on the whole batch within those tolerances.
/// </summary>
public sealed class DataParallelTests(ITestOutputHelper log) : IDisposable
{
    private const string Case = "b_batch2_two_images_leftpad";
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-dp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ForwardGradsOnTwoThreadRanksMatchesTransformers()
    {
        using var golden = new GoldenCase(Case);
        var perRank = ThreadWorld.Run(2, comm =>
        {
            using var model = Qwen2VLModel.LoadForTraining(FixturePaths.Root, DeviceKind.Cpu, []);
            // Small buckets: several of them, so reductions start while earlier layers are still differentiated.
            using var group = new DataParallelGroup(model, comm, zero: false, overlap: true, bucketElements: 4096);
            Assert.True(group.Buckets.Buckets.Count >= 8, $"{group.Buckets.Buckets.Count} buckets");
            var share = group.Share(model, golden.Inputs)!;
            Assert.Equal(1, share.Batch);
            Assert.Single(share.Images!.Grids);
            var (loss, _) = group.AccumulateGradients(model, [(share, null)]);
            var parameters = model.Parameters!;
            var grads = parameters.Parameters.Where(p => p.Trainable)
                .ToDictionary(p => p.Name, p => model.Context.Download(parameters.Grad(p.Name)));
            return (loss, grads);
        });
        Assert.Equal(perRank[0].loss, perRank[1].loss);
        foreach (var (name, g) in perRank[0].grads)
            Assert.True(g.AsSpan().SequenceEqual(perRank[1].grads[name]), $"{name} differs between the ranks");
        CompareWithGolden(golden, perRank[0].loss, perRank[0].grads);

        // And against one device running the whole batch, within the same tolerance: what data parallelism promises.
        using var single = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        using var sink = single.CreateGradients();
        var alone = single.ForwardBackward(golden.Inputs, sink);
        Assert.True(Math.Abs(perRank[0].loss - alone.Loss) <= 1e-5, $"loss {perRank[0].loss} vs single-device {alone.Loss}");
        double worst = 0;
        foreach (var (name, tensor) in sink.Gradients)
        {
            var expected = single.Context.Download(tensor);
            var actual = perRank[0].grads[name];
            double tolerance = 1e-5 + 1e-3 * expected.Max(Math.Abs);
            double diff = Compare.MaxAbsDiff(actual, expected, out int at);
            worst = Math.Max(worst, diff);
            Assert.True(diff <= tolerance, $"{name}: max |diff| against one device {diff:E3} at {at}, tolerance {tolerance:E2}");
        }
        Assert.True(sink.Gradients.Count == perRank[0].grads.Count, $"{sink.Gradients.Count} single-device gradients, {perRank[0].grads.Count} data-parallel");
        log.WriteLine($"against one device: loss {perRank[0].loss} vs {alone.Loss}; worst gradient |diff| {worst:E2}");
    }

    [Fact]
    public void ForwardGradsUnderMpirunMatchesTransformers()
    {
        var outPath = Path.Combine(_dir, "out.safetensors");
        var run = MpiRunner.Run(2, "forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case(Case, "inputs.safetensors"),
            "--out", outPath, "--grads", "--dp", "2", "--bucket-mb", "0.02");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}\n{run.Stdout}\n{run.Stderr}");
        // Rank 0 writes, once (mpirun may put terminal escapes before the first line).
        Assert.Single(run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("wrote "));
        using var golden = new GoldenCase(Case);
        using var written = SafetensorsFile.Open(outPath);
        var grads = written.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal))
            .ToDictionary(k => k["grad.".Length..], k => written.ReadFloat32(k));
        CompareWithGolden(golden, written.ReadFloat32("loss")[0], grads);
    }

    [Fact]
    public void ForwardGradsWithThreadRanksThroughTheCliMatchesTransformers()
    {
        var outPath = Path.Combine(_dir, "threads.safetensors");
        var run = CliRunner.Run("forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case(Case, "inputs.safetensors"),
            "--out", outPath, "--grads", "--dp", "2", "--comm", "threads");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}\n{run.Stdout}\n{run.Stderr}");
        using var golden = new GoldenCase(Case);
        using var written = SafetensorsFile.Open(outPath);
        var grads = written.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal))
            .ToDictionary(k => k["grad.".Length..], k => written.ReadFloat32(k));
        CompareWithGolden(golden, written.ReadFloat32("loss")[0], grads);
    }

    [Fact]
    public void AWorldThatIsNotTheLayoutIsOneClearLine()
    {
        var run = MpiRunner.Run(2, "forward", "--model", FixturePaths.Root, "--inputs", FixturePaths.Case(Case, "inputs.safetensors"),
            "--out", Path.Combine(_dir, "x.safetensors"), "--grads", "--dp", "4");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("mpirun started 2 processes but --dp 4 needs 4 ranks", run.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "x.safetensors")));
    }

    private void CompareWithGolden(GoldenCase golden, double loss, IReadOnlyDictionary<string, float[]> grads)
    {
        float expectedLoss = golden.Expected.ReadFloat32("loss")[0];
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-5, $"loss {loss} vs {expectedLoss}");
        int compared = 0;
        double worst = 0;
        foreach (var key in golden.Expected.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)))
        {
            string name = key["grad.".Length..];
            Assert.True(grads.ContainsKey(name), $"no gradient for {name}");
            var expected = golden.Expected.ReadFloat32(key);
            var actual = grads[name];
            double tolerance = 1e-5 + 1e-3 * expected.Max(Math.Abs);
            double diff = Compare.MaxAbsDiff(actual, expected, out int at);
            worst = Math.Max(worst, diff / tolerance);
            Assert.True(diff <= tolerance, $"{key}: max |diff| {diff:E3} at {at} (got {actual[at]}, expected {expected[at]}), tolerance {tolerance:E2}");
            compared++;
        }
        Assert.True(compared > 20, $"only {compared} gradients were compared");
        log.WriteLine($"loss {loss} vs {expectedLoss}; {compared} gradients, worst diff/tolerance {worst:F3}");
    }
}
