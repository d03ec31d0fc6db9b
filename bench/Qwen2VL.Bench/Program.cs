using System.Diagnostics;
using Qwen2VL.Bench;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

// Prefill and decode tokens/s of the compiled model on the CPU kernels, with the machine named and ratios to named
// baselines: for the tiny fixture model, the float64 reference (the same DSL modules run as plain C#); for the
// random-weight model with Qwen2-VL-2B dimensions, the roofline of this machine (decode: weight bytes / measured
// memory bandwidth; prefill: 2·params·tokens / measured peak of the CPU GEMM).
//
//   dotnet run -c Release --project bench/Qwen2VL.Bench -- [tiny] [2b] [--prompt-tokens N] [--decode-steps N] [--rounds N]
//
// `2b` (alias `2b-dtypes`): the 2B-dimension model loaded with f32 weights and with `--dtype bf16`, one child process
// per round and dtype, tokens/s, peak RSS and the read roofline of each (DTypeComparison.cs; 3 rounds by default).
// `2b-f32`: the f32 load alone with its GEMM-peak and copy-bandwidth rooflines, in this process.
// `bf16` instead measures the bf16-weight CPU kernels against the f32 ones on the 2B language-model shapes (Bf16Bench.cs).
// `startup` instead measures start-up on CUDA with precompiled PTX against ILGPU's JIT (Startup.cs).
// `serve` measures `serve`'s throughput on 32 concurrent requests, continuous batching against one at a time (ServeBench.cs);
// `serve-steps [N]`: only its engine-only decode-step times.
// `serve-2b [--prompt-tokens N] [--decode-steps N]`: 32 requests on the engine with the random-weight 2B-dimension
// model (f32 weights), one at a time against continuous batching (ServeBench.TwoB).
// `dp`: data-parallel training layouts with thread ranks and under mpirun: step time, optimizer state per rank, hidden communication (DataParallelBench.cs).

if (args.Length > 0 && args[0] is "startup" or "startup-child") return Startup.Run(args);
if (args.Length > 0 && args[0] is "serve") return await ServeBench.Run();
if (args.Length > 0 && args[0] is "serve-2b")
{
    ServeBench.TwoB(EnsureTwoBCheckpoint(), Option("--prompt-tokens", 16), Option("--decode-steps", 8));
    return 0;
}
if (args.Length > 0 && args[0] is "serve-steps")
{
    Console.WriteLine($"machine: {Machine.Describe()}");
    ServeBench.DecodeSteps(Path.Combine(AppContext.BaseDirectory, "shapes-model"), args.Length > 1 ? int.Parse(args[1]) : 200);
    return 0;
}
if (args.Length > 0 && args[0] is "dp" or DataParallelBench.MpiChild) return DataParallelBench.Run(args);
if (args.Length > 0 && args[0] == "bf16")
{
    Console.WriteLine($"machine: {Machine.Describe()}");
    Bf16Bench.Run(Option("--prompt-tokens", 64));
    return 0;
}

var models = args.Where(a => a is "tiny" or "2b" or "2b-f32").ToList();
if (models.Count == 0) models = ["tiny", "2b"];
int promptTokens = Option("--prompt-tokens", 64), decodeSteps = Option("--decode-steps", 8);
if (args.Length > 1 && args[0] == DTypeComparison.Child)
{
    TwoBChild(args[1] == "bf16", promptTokens, decodeSteps);
    return 0;
}
if (args.Length > 0 && args[0] == "2b-dtypes") models = ["2b"];
Console.WriteLine($"machine: {Machine.Describe()}");
Console.WriteLine($"prompt {promptTokens} tokens, {decodeSteps} decode steps, batch 1, f32 compute, CPU kernels (DeviceKind.Cpu)");
Console.WriteLine();
foreach (var name in models)
{
    if (name == "tiny") Tiny();
    else if (name == "2b-f32") TwoB();
    else TwoBDtypes();
}
return 0;

void TwoBDtypes()
{
    Console.WriteLine($"bf16 kernels: vector path {CpuBf16Gemm.Best}; CPU flags: {Machine.VectorFlags()}");
    Console.WriteLine($"Qwen2-VL-2B dimensions, random bf16 weights; prompt {promptTokens} tokens, {decodeSteps} decode steps, batch 1, CPU kernels; " +
                      "f32 compute in both (bf16: weights kept bf16, widened in registers)");
    var passThrough = args.Where(a => a.StartsWith("--", StringComparison.Ordinal) || int.TryParse(a, out _)).ToArray();
    DTypeComparison.Run(EnsureTwoBCheckpoint(), Option("--rounds", 3), passThrough);
    Console.WriteLine();
}

void Tiny()
{
    var dir = Path.Combine(AppContext.BaseDirectory, "tiny");
    using var model = Qwen2VLModel.Load(dir, DeviceKind.Cpu);
    var ids = PromptIds(promptTokens, 500);
    var (prefill, decode) = Measure(model, ids);

    var reference = ReferenceModel.Load(dir);
    var refPrefill = Median(3, () => reference.Forward(ids, null, 1, ids.Length));
    var refGenerate = Median(1, () => reference.Generate(ids, null, 1, ids.Length, decodeSteps + 1));
    var refDecode = (refGenerate - refPrefill) / decodeSteps;
    Console.WriteLine("tiny fixture model (hidden 64, 2 layers, vocab 512)");
    Report("prefill", promptTokens / prefill, promptTokens / refPrefill, "float64 reference (DSL modules as plain C#)");
    Report("decode", 1 / decode, 1 / refDecode, "float64 reference, recomputing the sequence");
    Console.WriteLine();
}

string EnsureTwoBCheckpoint()
{
    var dir = Path.Combine(Path.GetTempPath(), "qwen2vl-bench-2b");
    if (!File.Exists(Path.Combine(dir, "model.safetensors.index.json")))
        RandomCheckpoint.Write(dir, Qwen2VLDims.Qwen2VL2B, seed: 1);
    return dir;
}

// One dtype of `2b-dtypes`, in its own process: load, measure, print one RESULT line (tokens/s, peak RSS bytes, load s).
void TwoBChild(bool bf16, int tokens, int steps)
{
    var dir = Path.Combine(Path.GetTempPath(), "qwen2vl-bench-2b");
    var sw = Stopwatch.StartNew();
    using var model = Qwen2VLModel.Load(dir, DeviceKind.Cpu, Qwen2VL.Runtime.Aot.KernelOptions.Jit, bf16Weights: bf16);
    double load = sw.Elapsed.TotalSeconds;
    var (prefill, decode) = Measure(model, PromptIds(tokens, 151000));
    long textOnly = DTypeComparison.PeakRss();
    DTypeComparison.TouchVision(model);
    Console.WriteLine(FormattableString.Invariant(
        $"RESULT {tokens / prefill:R} {1 / decode:R} {DTypeComparison.PeakRss()} {load:R} {model.Bf16WeightElements} {textOnly}"));
}

void TwoB()
{
    var d = Qwen2VLDims.Qwen2VL2B;
    var dir = Path.Combine(Path.GetTempPath(), "qwen2vl-bench-2b");
    var sw = Stopwatch.StartNew();
    if (!File.Exists(Path.Combine(dir, "model.safetensors.index.json")))
        RandomCheckpoint.Write(dir, d, seed: 1);
    Console.WriteLine($"random-weight checkpoint with Qwen2-VL-2B dimensions at {dir} ({sw.Elapsed.TotalSeconds:F0} s)");
    sw.Restart();
    using var model = Qwen2VLModel.Load(dir, DeviceKind.Cpu);
    Console.WriteLine($"loaded in {sw.Elapsed.TotalSeconds:F0} s");
    var ids = PromptIds(promptTokens, 151000);
    var (prefill, decode) = Measure(model, ids);

    // The decoder reads every weight once per token: decoder layers + the tied embedding as lm_head (f32 in memory).
    long layerParams = (long)d.Layers * (2L * d.Hidden * d.Hidden + 2L * d.KvHeads * (d.Hidden / d.Heads) * d.Hidden
        + 3L * d.Intermediate * d.Hidden + d.Hidden + 2L * d.KvHeads * (d.Hidden / d.Heads) + 2L * d.Hidden);
    long matmulParams = layerParams + (long)d.Vocab * d.Hidden;
    double bandwidth = Machine.CopyBandwidth();
    double gemmPeak = Machine.GemmPeak();
    double decodeBound = bandwidth / (4.0 * matmulParams);               // tokens/s if only weight reads counted
    double prefillBound = gemmPeak / (2.0 * matmulParams);              // tokens/s if the GEMMs ran at peak
    Console.WriteLine($"Qwen2-VL-2B dimensions (hidden {d.Hidden}, {d.Layers} layers, vocab {d.Vocab}, tied head), random bf16 weights held as f32");
    Console.WriteLine($"  measured: memory copy {bandwidth / 1e9:F1} GB/s, CPU GEMM peak {gemmPeak / 1e9:F1} GFLOP/s");
    Report("prefill", promptTokens / prefill, prefillBound, "roofline: 2·params·tokens at the measured GEMM peak");
    Report("decode", 1 / decode, decodeBound, "roofline: f32 weight bytes at the measured copy bandwidth");
    Console.WriteLine();
}

(double Prefill, double Decode) Measure(Qwen2VLModel model, long[] ids)
{
    int s = ids.Length;
    var positions = new long[3 * s];
    for (int a = 0; a < 3; a++) for (int i = 0; i < s; i++) positions[a * s + i] = i;
    var mask = Enumerable.Repeat(1L, s).ToArray();
    double prefill = double.MaxValue;
    var steps = new List<double>();
    for (int run = 0; run < 3; run++) // run 0 warms up (first-touch of the arenas, the JIT); runs 1 and 2 are measured
    {
        using var cache = model.CreateCache(1, s + decodeSteps);
        var t = Stopwatch.StartNew();
        var logits = model.DecodeWithCache(cache, ids, positions, mask, s);
        if (run > 0) prefill = Math.Min(prefill, t.Elapsed.TotalSeconds);
        long next = ArgMax(logits);
        for (int step = 0; step < decodeSteps; step++)
        {
            t.Restart();
            var pos = Enumerable.Repeat((long)(s + step), 3).ToArray();
            logits = model.DecodeWithCache(cache, [next], pos, [1L], 1);
            next = ArgMax(logits);
            if (run > 0) steps.Add(t.Elapsed.TotalSeconds);
        }
    }
    // Prefill: the faster of two; decode: the median step (one step is ~0.1 s, so single steps show the shared machine's noise).
    steps.Sort();
    return (prefill, steps[steps.Count / 2]);
}

static void Report(string what, double tokensPerSecond, double baseline, string baselineName) =>
    Console.WriteLine($"  {what,-8} {tokensPerSecond,10:F2} tokens/s   baseline {baseline,10:F2} tokens/s   ratio {tokensPerSecond / baseline,6:F2}x   ({baselineName})");

static long[] PromptIds(int n, int below) => Enumerable.Range(0, n).Select(i => (long)((i * 7919 + 13) % below)).ToArray();

static long ArgMax(float[] v) => Array.IndexOf(v, v.Max());

static double Median(int runs, Action action)
{
    var times = new List<double>();
    for (int i = 0; i < runs; i++)
    {
        var t = Stopwatch.StartNew();
        action();
        times.Add(t.Elapsed.TotalSeconds);
    }
    times.Sort();
    return times[times.Count / 2];
}

int Option(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) ? v : fallback;
}
