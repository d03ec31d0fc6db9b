using System.Diagnostics;
using System.Globalization;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;

namespace Qwen2VL.Bench;

/// <summary>
/// `bench -- 2b` / `bench -- 2b-dtypes`: the random-weight model with Qwen2-VL-2B dimensions loaded with f32 weights
/// (the checkpoint widened) and with `--dtype bf16` (the checkpoint kept bf16), each round in its own child process so
/// that each peak RSS (VmHWM) is its own; prefill and decode tokens/s, peak RSS, and the decode roofline of each dtype
/// (its weight bytes per token at the measured read bandwidth), side by side from one run.
/// </summary>
internal static class DTypeComparison
{
    public const string Child = "2b-child";

    /// <summary>
    /// What the bf16 peak RSS is held to: 1.15 × the checkpoint's bytes (the weights, mapped) plus this fixed overhead —
    /// the .NET runtime and JIT-compiled code, the f32 norms and biases, the activation arenas of a 64-token prompt
    /// and a 64-patch image, the KV cache and the f32 logits.
    /// </summary>
    public const double FixedOverheadBytes = 0.5 * (1L << 30);

    public static int Run(string dir, int rounds, string[] passThrough)
    {
        long checkpointBytes = Directory.GetFiles(dir, "*.safetensors").Sum(f => new FileInfo(f).Length);
        var (bf16StepBytes, f32StepBytes) = DecodeStepBytes(dir);
        Console.WriteLine($"checkpoint: {checkpointBytes / (double)(1L << 30):F2} GiB of BF16 safetensors at {dir}; {rounds} round(s) per dtype, one process each");
        Console.WriteLine($"weight bytes read per decode step (language model; the tied table read once, as the head): " +
                          $"f32 {f32StepBytes / 1e9:F2} GB, bf16 {bf16StepBytes / 1e9:F2} GB");
        double bandwidth = ReadBandwidth.Measure();
        GC.Collect();
        Console.WriteLine($"read bandwidth (read-only sum over 1 GiB, {Environment.ProcessorCount} threads, best of 5): {bandwidth / 1e9:F1} GB/s");

        var results = new Dictionary<string, List<double[]>>();
        for (int r = 0; r < rounds; r++)
            foreach (string dtype in new[] { "f32", "bf16" }) // alternating, so drifts of the shared machine hit both
            {
                if (!results.ContainsKey(dtype)) results[dtype] = [];
                double[] v = RunChild(dtype, passThrough);
                results[dtype].Add(v);
                Console.WriteLine($"  {dtype,-4} round {r + 1}: prefill {v[0]:F1} tok/s, decode {v[1]:F2} tok/s, peak RSS {v[2] / (1L << 30):F2} GiB " +
                                  $"(text only {v[5] / (1L << 30):F2} GiB), load {v[3]:F0} s, {v[4] / 1e9:F2} G weights in bf16");
            }
        // The machine is shared: measure the bandwidth again and hold decode to the higher (stricter) figure.
        double again = ReadBandwidth.Measure();
        GC.Collect();
        if (again > bandwidth) Console.WriteLine($"read bandwidth measured again: {again / 1e9:F1} GB/s (used below)");
        bandwidth = Math.Max(bandwidth, again);

        static string Range(IEnumerable<double> xs, string format)
        {
            var list = xs.ToList();
            return list.Count == 1 ? list[0].ToString(format, CultureInfo.InvariantCulture)
                : $"{list.Min().ToString(format, CultureInfo.InvariantCulture)}–{list.Max().ToString(format, CultureInfo.InvariantCulture)}";
        }
        Console.WriteLine();
        Console.WriteLine("| weights in memory | prefill tok/s | decode tok/s | decode roofline tok/s | % of roofline | peak RSS GiB | peak RSS / checkpoint |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (dtype, runs) in results)
        {
            double roofline = bandwidth / (dtype == "bf16" ? bf16StepBytes : f32StepBytes);
            Console.WriteLine($"| {dtype} | {Range(runs.Select(v => v[0]), "F1")} | {Range(runs.Select(v => v[1]), "F2")} | {roofline:F2} | " +
                              $"{Range(runs.Select(v => 100 * v[1] / roofline), "F0")} | " +
                              $"{Range(runs.Select(v => v[2] / (1L << 30)), "F2")} | {Range(runs.Select(v => v[2] / checkpointBytes), "F2")} |");
        }
        double Median(string dtype, int i)
        {
            var xs = results[dtype].Select(v => v[i]).Order().ToList();
            return xs[xs.Count / 2];
        }
        double bf16Roofline = bandwidth / bf16StepBytes;
        double bf16Rss = results["bf16"].Max(v => v[2]), allowed = 1.15 * checkpointBytes + FixedOverheadBytes;
        Console.WriteLine();
        Console.WriteLine($"bf16 / f32 (medians): decode {Median("bf16", 1) / Median("f32", 1):F2}x (target ≥1.70x), " +
                          $"prefill {Median("bf16", 0) / Median("f32", 0):F2}x (target ≥1.00x); " +
                          $"bf16 decode {100 * Median("bf16", 1) / bf16Roofline:F0}% of its read roofline (target ≥80%)");
        Console.WriteLine($"bf16 peak RSS {bf16Rss / (1L << 30):F2} GiB = {bf16Rss / checkpointBytes:F3}× the checkpoint; allowed 1.15× + " +
                          $"{FixedOverheadBytes / (1L << 30):F1} GiB fixed = {allowed / (1L << 30):F2} GiB: {(bf16Rss <= allowed ? "met" : "NOT met")}");
        return 0;
    }

    /// <summary>
    /// Weight bytes a decode step reads: every language-model tensor once (the tied embedding table as the head; the
    /// embedding gather reads one row), 2 bytes per element of what <c>--dtype bf16</c> keeps bf16 and 4 otherwise;
    /// f32 everywhere for the f32 load.
    /// </summary>
    private static (double Bf16, double F32) DecodeStepBytes(string dir)
    {
        using var weights = WeightStore.OpenDirectory(dir);
        double bf16 = 0, f32 = 0;
        foreach (string name in weights.Names.Where(n => !n.StartsWith("visual.", StringComparison.Ordinal)))
        {
            long n = weights.Info(name).ElementCount;
            f32 += 4.0 * n;
            bf16 += (Bf16Weights.IsKeptBf16(name) ? 2.0 : 4.0) * n;
        }
        return (bf16, f32);
    }

    private static double[] RunChild(string dtype, string[] passThrough)
    {
        string path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(path) { RedirectStandardOutput = true, UseShellExecute = false };
        if (!path.EndsWith("Qwen2VL.Bench", StringComparison.Ordinal)) start.ArgumentList.Add(typeof(DTypeComparison).Assembly.Location);
        start.ArgumentList.Add(Child);
        start.ArgumentList.Add(dtype);
        foreach (string a in passThrough) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        string? line = output.Split('\n').FirstOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null)
            throw new InvalidOperationException($"{Child} {dtype} failed (exit {process.ExitCode}): {output}");
        return line.Split(' ').Skip(1).Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>This process's peak resident set (VmHWM), in bytes.</summary>
    public static long PeakRss()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024; // "VmHWM:\t13012345 kB"
    }

    /// <summary>
    /// After the text measurements: one 16×16-patch image (64 vision tokens) through the vision tower and the embedding
    /// scatter, so that every weight of the checkpoint has been read once and the peak RSS covers the whole model.
    /// </summary>
    public static void TouchVision(Qwen2VLModel model)
    {
        const int side = 16;
        int merged = side * side / (model.SpatialMerge * model.SpatialMerge);
        var rng = new Random(3);
        var pixels = new float[side * side * 1176];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rng.NextDouble() * 2 - 1);
        var ids = new List<long> { model.TokenIds.VisionStart };
        ids.AddRange(Enumerable.Repeat((long)model.TokenIds.Image, merged));
        ids.AddRange([151653, 100, 200]);
        var images = new VisionBatch(pixels, side * side, 1176, [new Qwen2VL.Model.Reference.GridThw(1, side, side)]);
        model.Embed(new ForwardInputs(ids.ToArray(), 1, ids.Count, Images: images));
    }
}
