using System.Diagnostics;
using System.Globalization;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;

namespace Qwen2VL.Bench;

/// <summary>
/// Start-up time on CUDA with the kernels precompiled to PTX (<c>--kernels</c>, <c>--no-jit</c>) against ILGPU
/// compiling them at first launch: from process start to the first generated token of the tiny fixture model on its
/// image+text example (vision tower, prefill, one sampled token), each run a fresh process. The CUDA driver's own
/// PTX → machine code cache is disabled (<c>CUDA_CACHE_DISABLE=1</c>) so that both paths start cold; with
/// <c>--driver-cache</c> it is left on (a second run then measures what a deployed machine sees after its first).
///
///   dotnet run -c Release --project bench/Qwen2VL.Bench -- startup [--kernels DIR] [--runs N] [--driver-cache]
///
/// Without a CUDA GPU it says so and exits 0: nothing here can be measured on the CPU, where no kernel is compiled
/// at run time. NOT YET RUN ON A GPU: no numbers have been recorded.
/// </summary>
internal static class Startup
{
    private const string Child = "startup-child";

    public static int Run(string[] args)
    {
        if (args[0] == Child) return RunChild(args);
        Console.WriteLine($"machine: {Machine.Describe()}");
        if (ComputeContext.DefaultKind() != DeviceKind.Cuda)
        {
            Console.WriteLine("startup: no CUDA GPU visible (no NVIDIA driver or no device). This benchmark compares ILGPU's JIT with precompiled PTX on a GPU and cannot measure anything on this machine.");
            return 0;
        }

        int runs = Option(args, "--runs", 3);
        var kernels = Value(args, "--kernels");
        string? temp = null;
        if (kernels is null)
        {
            temp = Directory.CreateTempSubdirectory("qwen2vl-startup-").FullName;
            kernels = Path.Combine(temp, "kernels");
            var sw = Stopwatch.StartNew();
            var modules = KernelCatalog.ModuleTypes(typeof(Qwen2VLModel).Assembly);
            var manifest = AotBuild.Run(modules, PtxTarget.SupportedNames.Select(PtxTarget.Parse).ToArray(), null, kernels);
            Console.WriteLine($"compiled {manifest.Kernels.Count} kernels for {string.Join(", ", manifest.Architectures)} in {sw.Elapsed.TotalSeconds:F1} s (ahead of time, not counted)");
        }
        bool driverCache = args.Contains("--driver-cache");
        Console.WriteLine($"tiny fixture model, example a_image_text, first generated token; {runs} fresh processes per path; CUDA driver cache {(driverCache ? "on" : "off (CUDA_CACHE_DISABLE=1)")}");
        try
        {
            var jit = new List<ChildResult>();
            var ptx = new List<ChildResult>();
            for (int i = 0; i < runs; i++) // interleaved, so that drift of the machine affects both paths alike
            {
                jit.Add(Spawn(["jit"], driverCache));
                ptx.Add(Spawn(["ptx", kernels], driverCache));
            }
            Report("ILGPU JIT", jit);
            Report("PTX, --no-jit", ptx);
            double ratio = Median(jit, r => r.FirstToken) / Median(ptx, r => r.FirstToken);
            Console.WriteLine($"  process start → first token: precompiled PTX is {ratio:F2}x faster than the JIT path (medians)");
            return 0;
        }
        finally
        {
            if (temp is not null) Directory.Delete(temp, recursive: true);
        }
    }

    private sealed record ChildResult(double Load, double FirstToken, string Note);

    private static ChildResult Spawn(string[] childArgs, bool driverCache)
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(path) == "dotnet") start.ArgumentList.Add(typeof(Startup).Assembly.Location);
        start.ArgumentList.Add(Child);
        foreach (var a in childArgs) start.ArgumentList.Add(a);
        if (!driverCache) start.Environment["CUDA_CACHE_DISABLE"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"startup child {string.Join(' ', childArgs)} failed ({process.ExitCode}): {stderr}{stdout}");
        var fields = stdout.Trim().Split('\n')[^1].Split('\t');
        return new ChildResult(Parse(fields[0]), Parse(fields[1]), fields.Length > 2 ? fields[2] : "");
    }

    /// <summary>One measured process: prints "load seconds, first token seconds (both since process start), note".</summary>
    private static int RunChild(string[] args)
    {
        var options = args[1] == "ptx" ? new KernelOptions(args[2], NoJit: true) : KernelOptions.Jit;
        var dir = Path.Combine(AppContext.BaseDirectory, "tiny");
        var batch = ForwardFiles.ReadInputs(Path.Combine(dir, "example", "inputs.safetensors"));
        using var model = Qwen2VLModel.Load(dir, DeviceKind.Cuda, options);
        double load = SinceStart();
        TextGenerator.Generate(model, batch, new GenerationOptions(1, SamplingOptions.Greedy, model.EosTokenIds, model.PadTokenId));
        model.Context.Synchronize();
        double first = SinceStart();
        int cached = IlgpuKernelCache.CompiledMethods(model.Context.Accelerator).Count;
        Console.WriteLine(string.Join('\t', load.ToString("R", CultureInfo.InvariantCulture), first.ToString("R", CultureInfo.InvariantCulture),
            $"{model.KernelNote ?? "kernels: ILGPU JIT"}; {cached} kernels in ILGPU's cache"));
        return 0;
    }

    private static double SinceStart() => (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalSeconds;

    private static void Report(string name, List<ChildResult> results)
    {
        Console.WriteLine($"  {name,-14} model loaded {Median(results, r => r.Load),7:F2} s   first token {Median(results, r => r.FirstToken),7:F2} s   (medians since process start; runs: {string.Join(", ", results.Select(r => r.FirstToken.ToString("F2", CultureInfo.InvariantCulture)))} s)");
        Console.WriteLine($"  {"",-14} {results[^1].Note}");
    }

    private static double Median(List<ChildResult> results, Func<ChildResult, double> value)
    {
        var sorted = results.Select(value).Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static double Parse(string s) => double.Parse(s, CultureInfo.InvariantCulture);

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int Option(string[] args, string name, int fallback) =>
        Value(args, name) is { } v && int.TryParse(v, out var n) ? n : fallback;
}
