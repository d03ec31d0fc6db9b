using System.Diagnostics;
using System.Runtime.InteropServices;
using Qwen2VL.Runtime;

namespace Qwen2VL.Bench;

/// <summary>What machine the numbers come from, and its two ceilings measured in-process.</summary>
internal static class Machine
{
    public static string Describe()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim()
            : null;
        return $"{cpu ?? RuntimeInformation.ProcessArchitecture.ToString()}, {Environment.ProcessorCount} logical cores, " +
               $"{RuntimeInformation.OSDescription}, .NET {Environment.Version}";
    }

    /// <summary>Bytes read + written per second by copying a 512 MiB array (best of 5).</summary>
    public static double CopyBandwidth()
    {
        var a = new float[128 << 20];
        var b = new float[128 << 20];
        Array.Fill(a, 1f);
        double best = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            var t = Stopwatch.StartNew();
            a.AsSpan().CopyTo(b);
            best = Math.Min(best, t.Elapsed.TotalSeconds);
        }
        return 2.0 * a.Length * sizeof(float) / best;
    }

    /// <summary>FLOP/s of the runtime's CPU GEMM on a prefill-shaped product (256 × 1536 · 8960ᵀ), best of 3.</summary>
    public static double GemmPeak()
    {
        using var ctx = ComputeContext.Create(DeviceKind.Cpu);
        const int m = 256, n = 8960, k = 1536;
        var rng = new Random(3);
        using var a = ctx.Upload(Enumerable.Range(0, m * k).Select(_ => (float)rng.NextDouble()).ToArray(), m, k);
        using var w = ctx.Upload(Enumerable.Range(0, n * k).Select(_ => (float)rng.NextDouble()).ToArray(), n, k);
        using var c = ctx.Allocate(m, n);
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var t = Stopwatch.StartNew();
            ctx.Gemm(a, w, c, m, n, k);
            best = Math.Min(best, t.Elapsed.TotalSeconds);
        }
        return 2.0 * m * n * k / best;
    }
}
