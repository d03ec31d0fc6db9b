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

    /// <summary>Which of the vector extensions the bf16 kernels care about /proc/cpuinfo reports (absent ones are named "no").</summary>
    public static string VectorFlags()
    {
        string? line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags")) : null;
        if (line is null) return "unknown";
        var flags = line.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        return string.Join(", ", new[] { "avx2", "fma", "f16c", "avx512f", "avx512_bf16" }.Select(f => flags.Contains(f) ? f : "no " + f));
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

/// <summary>Read bandwidth: what a decode step is bound by (weights are only read).</summary>
internal static class ReadBandwidth
{
    /// <summary>
    /// Bytes per second of a read-only vector sum over a 1 GiB buffer (far larger than the caches), split over all
    /// cores as the GEMV is, best of 5. Copy bandwidth would count writes and their read-for-ownership traffic too.
    /// </summary>
    public static double Measure()
    {
        const int length = 256 << 20; // floats: 1 GiB
        var buffer = new float[length];
        Parallel.For(0, Environment.ProcessorCount, p =>
        {
            int chunk = length / Environment.ProcessorCount;
            buffer.AsSpan(p * chunk, chunk).Fill(1f); // touch every page from the thread that will read it
        });
        int parts = Environment.ProcessorCount;
        double best = double.MaxValue, total = 0;
        for (int run = 0; run < 5; run++)
        {
            var t = Stopwatch.StartNew();
            var sums = new double[parts];
            Parallel.For(0, parts, p =>
            {
                int chunk = length / parts;
                sums[p] = Sum(buffer.AsSpan(p * chunk, chunk));
            });
            best = Math.Min(best, t.Elapsed.TotalSeconds);
            total += sums.Sum();
        }
        if (total != 5.0 * (length / parts) * parts) throw new InvalidOperationException("read-bandwidth sum is wrong");
        return (double)length * sizeof(float) / best;
    }

    private static double Sum(ReadOnlySpan<float> span)
    {
        ref float r = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(span);
        var s0 = System.Runtime.Intrinsics.Vector256<float>.Zero; var s1 = s0; var s2 = s0; var s3 = s0;
        int i = 0;
        for (; i + 32 <= span.Length; i += 32)
        {
            s0 += System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref r, (nuint)i);
            s1 += System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref r, (nuint)(i + 8));
            s2 += System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref r, (nuint)(i + 16));
            s3 += System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref r, (nuint)(i + 24));
        }
        double sum = System.Runtime.Intrinsics.Vector256.Sum(s0 + s1 + s2 + s3);
        for (; i < span.Length; i++) sum += span[i];
        return sum;
    }
}
