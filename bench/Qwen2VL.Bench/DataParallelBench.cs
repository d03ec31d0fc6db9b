using Qwen2VL.Model.Training;
using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Distributed.Threads;

namespace Qwen2VL.Bench;

/// <summary>
/// Data-parallel training layouts on this machine, thread ranks (<c>--comm threads</c>) on the CPU kernels: time per
/// optimizer step, the optimizer state each rank holds (ZeRO-1: 1/DP of the single-device state), and the gradient
/// communication per step — how long the bucket reductions took, how much of that the step waited for after its
/// backward pass (exposed), and so how much the overlap with the backward pass hid. Baseline: one device, same
/// global batch, same model, measured in the same run.
/// <code>dotnet run -c Release --project bench/Qwen2VL.Bench -- dp [--steps N] [--batch B] [--bucket-mb M]</code>
/// </summary>
internal static class DataParallelBench
{
    private sealed record Step(double Seconds, double Communication, double Exposed, long StateBytes);

    public static int Run(string[] args)
    {
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
            var layouts = new (string Name, int Dp, int Zero, bool Overlap)[]
            {
                ("1 device", 1, 0, true),
                ("dp 2", 2, 0, true),
                ("dp 2, no overlap", 2, 0, false),
                ("dp 2, zero 1", 2, 1, true),
                ("dp 2, zero 1, no overlap", 2, 1, false),
            };
            Console.WriteLine($"  {"layout",-26} {"ms/step",8} {"× 1 device",10} {"optimizer state/rank",21} {"comm ms/step",13} {"exposed ms",11} {"hidden ms",10}");
            double baseline = 0;
            long baselineState = 0;
            foreach (var (name, dp, zero, overlap) in layouts)
            {
                var options = new TrainOptions
                {
                    DataPath = data, OutDir = Path.Combine(work, name.Replace(' ', '-').Replace(",", "")), MaxSteps = steps, BatchSize = batch,
                    WarmupSteps = 2, SaveEvery = 1_000_000, DataParallel = dp, Zero = zero, Overlap = overlap,
                    BucketElements = (int)(bucketMb * (1 << 18)),
                };
                var measured = Measure(model, options);
                double perStep = Median(measured.Select(m => m.Seconds));
                if (dp == 1) { baseline = perStep; baselineState = measured[0].StateBytes; }
                double comm = Median(measured.Select(m => m.Communication)), exposed = Median(measured.Select(m => m.Exposed));
                string state = $"{measured[0].StateBytes / 1024.0:F0} KiB ({(double)measured[0].StateBytes / baselineState:P0})";
                Console.WriteLine($"  {name,-26} {perStep * 1e3,8:F1} {perStep / baseline,9:F2}× {state,21} " +
                                  $"{(dp == 1 ? "-" : $"{comm * 1e3:F2}"),13} {(dp == 1 ? "-" : $"{exposed * 1e3:F2}"),11} {(dp == 1 ? "-" : $"{Math.Max(0, comm - exposed) * 1e3:F2}"),10}");
            }
            Console.WriteLine();
            Console.WriteLine("comm: time the bucket reductions took; exposed: time the step waited for them after its backward pass;");
            Console.WriteLine("hidden = comm − exposed (with no overlap every reduction is exposed). Two thread ranks share this machine's cores.");
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Rank 0's steps after the first two (start-up, first allocations).</summary>
    private static List<Step> Measure(string model, TrainOptions options)
    {
        var steps = new List<Step>();
        long last = System.Diagnostics.Stopwatch.GetTimestamp();
        void Report(TrainStepReport r)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (r.Step > 2)
                steps.Add(new Step((now - last) / (double)System.Diagnostics.Stopwatch.Frequency, r.CommunicationSeconds, r.ExposedCommunicationSeconds, r.OptimizerStateBytes));
            last = now;
        }
        if (options.DataParallel == 1)
        {
            Trainer.Run(model, options, Report);
            return steps;
        }
        ThreadWorld.Run(options.DataParallel, comm => Trainer.RunLocked(model, options, comm.Rank == 0 ? Report : null, comm: comm));
        return steps;
    }

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
