using System.Diagnostics;
using System.Globalization;
using Qwen2VL.Model.Training;
using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Distributed.Threads;

namespace Qwen2VL.Bench;

/// <summary>
/// Data-parallel training layouts on this machine on the CPU kernels, with thread ranks (<c>--comm threads</c>) and,
/// when Open MPI's <c>mpirun</c> is installed, with one process per rank (<c>--comm mpi</c>; this program re-runs
/// itself under <c>mpirun -np 2</c>, and rank 0 reports): time per optimizer step, the optimizer state each rank holds
/// (ZeRO-1: 1/DP of the single-device state), and the gradient communication per step — how long the bucket
/// reductions took, how much of that the step waited for after its backward pass (exposed), and so how much the
/// overlap with the backward pass hid. Baseline: one device, same global batch, same model, measured in the same run.
/// <code>dotnet run -c Release --project bench/Qwen2VL.Bench -- dp [--steps N] [--batch B] [--bucket-mb M] [--no-mpi]</code>
/// </summary>
internal static class DataParallelBench
{
    private sealed record Step(double Seconds, double Communication, double Exposed, long StateBytes);

    public const string MpiChild = "dp-mpi-child";

    public static int Run(string[] args)
    {
        if (args[0] == MpiChild) return RunMpiChild(args);
        int steps = Option(args, "--steps", 10), batch = Option(args, "--batch", 8);
        double bucketMb = Option(args, "--bucket-mb", 0.25);
        var work = Directory.CreateTempSubdirectory("qvl-bench-dp-").FullName;
        try
        {
            var (model, data) = ShapesRecipe.Prepare(Path.Combine(work, "prep"), samples: 64, seed: 7);
            Console.WriteLine($"machine: {Machine.Describe()}");
            Console.WriteLine($"shapes model (hidden 96, 2 layers, tied embeddings), batch {batch}, {steps} steps (first 2 not timed), " +
                              $"thread ranks, CPU kernels, buckets of {bucketMb} MiB");
            Console.WriteLine();
            string? mpirun = args.Contains("--no-mpi") ? null : new[] { "/usr/bin/mpirun", "/usr/local/bin/mpirun" }.FirstOrDefault(File.Exists);
            var layouts = new List<(string Name, int Dp, int Zero, bool Overlap, bool Mpi)>
            {
                ("1 device", 1, 0, true, false),
                ("dp 2 threads", 2, 0, true, false),
                ("dp 2 threads, no overlap", 2, 0, false, false),
                ("dp 2 threads, zero 1", 2, 1, true, false),
                ("dp 2 threads, zero 1, no ov.", 2, 1, false, false),
            };
            if (mpirun is not null)
                layouts.AddRange([
                    ("dp 2 mpi", 2, 0, true, true),
                    ("dp 2 mpi, no overlap", 2, 0, false, true),
                    ("dp 2 mpi, zero 1", 2, 1, true, true),
                    ("dp 2 mpi, zero 1, no overlap", 2, 1, false, true),
                ]);
            else Console.WriteLine("(no mpirun found, or --no-mpi: MPI layouts skipped)");
            Console.WriteLine($"  {"layout",-30} {"ms/step",8} {"× 1 device",10} {"optimizer state/rank",21} {"comm ms/step",13} {"exposed ms",11} {"hidden ms",10}");
            double baseline = 0;
            long baselineState = 0;
            foreach (var (name, dp, zero, overlap, mpi) in layouts)
            {
                var options = new TrainOptions
                {
                    DataPath = data, OutDir = Path.Combine(work, name.Replace(' ', '-').Replace(",", "")), MaxSteps = steps, BatchSize = batch,
                    WarmupSteps = 2, SaveEvery = 1_000_000, DataParallel = dp, Zero = zero, Overlap = overlap,
                    BucketElements = (int)(bucketMb * (1 << 18)),
                };
                var measured = mpi ? MeasureUnderMpirun(mpirun!, model, options) : Measure(model, options);
                double perStep = Median(measured.Select(m => m.Seconds));
                if (dp == 1) { baseline = perStep; baselineState = measured[0].StateBytes; }
                double comm = Median(measured.Select(m => m.Communication)), exposed = Median(measured.Select(m => m.Exposed));
                string state = $"{measured[0].StateBytes / 1024.0:F0} KiB ({(double)measured[0].StateBytes / baselineState:P0})";
                Console.WriteLine($"  {name,-30} {perStep * 1e3,8:F1} {perStep / baseline,9:F2}× {state,21} " +
                                  $"{(dp == 1 ? "-" : $"{comm * 1e3:F2}"),13} {(dp == 1 ? "-" : $"{exposed * 1e3:F2}"),11} {(dp == 1 ? "-" : $"{Math.Max(0, comm - exposed) * 1e3:F2}"),10}");
            }
            Console.WriteLine();
            Console.WriteLine("comm: time the bucket reductions took; exposed: time the step waited for them after its backward pass;");
            Console.WriteLine("hidden = comm − exposed (with no overlap every reduction is exposed). Medians over the timed steps.");
            Console.WriteLine($"The ranks share this machine's {Environment.ProcessorCount} logical cores with each other (and the 1-device run uses them all):");
            Console.WriteLine("data parallelism here divides the same cores, so ratios above 1 are expected; it shows the cost of the collectives, not scaling.");
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Rank 0's steps after the first two (start-up, first allocations): one device, or thread ranks.</summary>
    private static List<Step> Measure(string model, TrainOptions options) => options.DataParallel == 1
        ? Measure(model, options, comm: null)
        : ThreadWorld.Run(options.DataParallel, comm => Measure(model, options, comm))[0];

    /// <summary>One rank (or one device, <paramref name="comm"/> null): rank 0's timed steps; the other ranks return none.</summary>
    private static List<Step> Measure(string model, TrainOptions options, ICommunicator? comm)
    {
        var steps = new List<Step>();
        long last = Stopwatch.GetTimestamp();
        void Report(TrainStepReport r)
        {
            long now = Stopwatch.GetTimestamp();
            if (r.Step > 2)
                steps.Add(new Step((now - last) / (double)Stopwatch.Frequency, r.CommunicationSeconds, r.ExposedCommunicationSeconds, r.OptimizerStateBytes));
            last = now;
        }
        if (comm is null) Trainer.Run(model, options, Report);
        else Trainer.RunLocked(model, options, comm.Rank == 0 ? Report : null, comm: comm);
        return steps;
    }

    /// <summary>
    /// The layout as two processes under <c>mpirun -np 2</c> (this program, <see cref="MpiChild"/>): rank 0 prints its
    /// timed steps, one line each, which are read back here.
    /// </summary>
    private static List<Step> MeasureUnderMpirun(string mpirun, string model, TrainOptions options)
    {
        var start = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-np", $"{options.DataParallel}", "--oversubscribe", "--bind-to", "none" }) start.ArgumentList.Add(a);
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        start.ArgumentList.Add(self);
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(DataParallelBench).Assembly.Location);
        foreach (var a in new[] { MpiChild, model, options.DataPath, options.OutDir, I(options.MaxSteps!.Value), I(options.BatchSize),
                     I(options.Zero), options.Overlap ? "1" : "0", I(options.BucketElements) })
            start.ArgumentList.Add(a);
        start.Environment["OMPI_MCA_btl"] = "self,vader"; // one machine: shared memory and loopback
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; // CI and containers run as root, which Open MPI refuses unless told
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"mpirun exited {process.ExitCode}: {stderr.Result}");
        return stdout.Split('\n').Where(l => l.StartsWith("step ", StringComparison.Ordinal)).Select(l =>
        {
            var f = l.Split(' ');
            return new Step(D(f[1]), D(f[2]), D(f[3]), long.Parse(f[4], CultureInfo.InvariantCulture));
        }).ToList();
    }

    /// <summary>One rank under mpirun: trains, and rank 0 prints "step seconds comm exposed stateBytes" per timed step.</summary>
    private static int RunMpiChild(string[] a)
    {
        var options = new TrainOptions
        {
            DataPath = a[2], OutDir = a[3], MaxSteps = int.Parse(a[4], CultureInfo.InvariantCulture), BatchSize = int.Parse(a[5], CultureInfo.InvariantCulture),
            WarmupSteps = 2, SaveEvery = 1_000_000, DataParallel = 2, Zero = int.Parse(a[6], CultureInfo.InvariantCulture), Overlap = a[7] == "1",
            BucketElements = int.Parse(a[8], CultureInfo.InvariantCulture),
        };
        var steps = new List<Step>();
        CommLauncher.Run(CommBackend.Mpi, options.DataParallel, $"--dp {options.DataParallel}", comm =>
        {
            steps = Measure(a[1], options, comm);
            return 0;
        });
        foreach (var s in steps)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {s.Seconds:R} {s.Communication:R} {s.Exposed:R} {s.StateBytes}"));
        return 0;
    }

    private static string I(int x) => x.ToString(CultureInfo.InvariantCulture);
    private static double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);

    private static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static T Option<T>(string[] args, string name, T fallback) where T : IParsable<T>
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? T.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    }
}
