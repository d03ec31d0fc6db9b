using System.Diagnostics;
using System.Globalization;

namespace Qwen2VL.Bench;

/// <summary>
/// `bench -- 2b-dtypes`: the random-weight model with Qwen2-VL-2B dimensions loaded with f32 weights and with bf16
/// linear weights (`generate --dtype bf16`), each in its own child process so that each peak RSS (VmHWM) is its own;
/// prefill and decode tokens/s and peak RSS side by side, in one run.
/// </summary>
internal static class DTypeComparison
{
    public const string Child = "2b-child";

    public static int Run(string dir, int rounds, string[] passThrough)
    {
        long checkpointBytes = Directory.GetFiles(dir, "*.safetensors").Sum(f => new FileInfo(f).Length);
        Console.WriteLine($"checkpoint: {checkpointBytes / (double)(1L << 30):F2} GiB of BF16 safetensors at {dir}; {rounds} round(s) per dtype, one process each");
        var results = new Dictionary<string, List<double[]>>();
        foreach (string dtype in new[] { "f32", "bf16" })
        {
            results[dtype] = [];
            for (int r = 0; r < rounds; r++)
            {
                double[] v = RunChild(dtype, passThrough);
                results[dtype].Add(v);
                Console.WriteLine($"  {dtype} round {r + 1}: prefill {v[0]:F1} tok/s, decode {v[1]:F2} tok/s, peak RSS {v[2] / (1L << 30):F2} GiB, load {v[3]:F0} s, {v[4] / 1e9:F2} G weights in bf16");
            }
        }
        static string Range(IEnumerable<double> xs, string format)
        {
            var list = xs.ToList();
            return list.Count == 1 ? list[0].ToString(format, CultureInfo.InvariantCulture)
                : $"{list.Min().ToString(format, CultureInfo.InvariantCulture)}–{list.Max().ToString(format, CultureInfo.InvariantCulture)}";
        }
        Console.WriteLine();
        Console.WriteLine("| weights in memory | prefill tok/s | decode tok/s | peak RSS GiB | peak RSS / checkpoint |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (dtype, runs) in results)
            Console.WriteLine($"| {dtype} | {Range(runs.Select(v => v[0]), "F1")} | {Range(runs.Select(v => v[1]), "F2")} | " +
                              $"{Range(runs.Select(v => v[2] / (1L << 30)), "F2")} | {Range(runs.Select(v => v[2] / checkpointBytes), "F2")} |");
        double bestF32Decode = results["f32"].Max(v => v[1]), bestBf16Decode = results["bf16"].Max(v => v[1]);
        double bestF32Prefill = results["f32"].Max(v => v[0]), bestBf16Prefill = results["bf16"].Max(v => v[0]);
        double bf16Rss = results["bf16"].Max(v => v[2]);
        Console.WriteLine($"bf16 / f32: decode {bestBf16Decode / bestF32Decode:F2}x, prefill {bestBf16Prefill / bestF32Prefill:F2}x (best rounds); " +
                          $"bf16 peak RSS = checkpoint + {(bf16Rss - checkpointBytes) / (1L << 30):F2} GiB");
        return 0;
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
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
