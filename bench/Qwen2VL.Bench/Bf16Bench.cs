using System.Diagnostics;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Bench;

/// <summary>
/// `bench -- bf16`: the bf16-weight CPU kernels against the f32 ones on the Qwen2-VL-2B language-model shapes, in one
/// run: a decode step's GEMVs (28 layers + the 151,936-row lm_head), its fraction of the read-bandwidth roofline, and
/// the prefill GEMMs of a 64-token prompt; plus oneDNN's bf16 matmul where libdnnl is installed.
/// </summary>
internal static class Bf16Bench
{
    private const int Hidden = 1536, Intermediate = 8960, Heads = 12, KvHeads = 2, HeadDim = 128, Vocab = 151936, Layers = 28;

    /// <summary>One decoder layer's linear weights as (rows n, columns k): q, k, v, o, gate, up, down.</summary>
    private static readonly (int N, int K)[] LayerShapes =
    [
        (Heads * HeadDim, Hidden), (KvHeads * HeadDim, Hidden), (KvHeads * HeadDim, Hidden), (Hidden, Heads * HeadDim),
        (Intermediate, Hidden), (Intermediate, Hidden), (Hidden, Intermediate),
    ];

    /// <summary>Distinct layer copies cycled through (7 times for 28 layers): 750 MB of f32, far past the caches.</summary>
    private const int DistinctLayers = 4;

    public static void Run(int promptTokens)
    {
        Console.WriteLine($"bf16 kernels: vector path {CpuBf16Gemm.Best} (AVX-512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, " +
                          $"AVX2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}, FMA {System.Runtime.Intrinsics.X86.Fma.IsSupported})");
        double bandwidth = ReadBandwidth.Measure();
        GC.Collect();
        Console.WriteLine($"read bandwidth (read-only sum over 1 GiB, {Environment.ProcessorCount} threads, best of 5): {bandwidth / 1e9:F1} GB/s");

        var rng = new Random(5);
        var f32 = new float[DistinctLayers][][];
        var bf16 = new ushort[DistinctLayers][][];
        for (int l = 0; l < DistinctLayers; l++)
        {
            f32[l] = new float[LayerShapes.Length][];
            bf16[l] = new ushort[LayerShapes.Length][];
            for (int i = 0; i < LayerShapes.Length; i++)
                (f32[l][i], bf16[l][i]) = RandomWeights(LayerShapes[i].N * LayerShapes[i].K, rng);
        }
        var (headF32, headBf16) = RandomWeights(Vocab * Hidden, rng);
        long layerParams = LayerShapes.Sum(s => (long)s.N * s.K);
        long stepParams = Layers * layerParams + (long)Vocab * Hidden;

        using var ctx = ComputeContext.Create(DeviceKind.Cpu);
        float[] x = RandomActivations(promptTokens * Intermediate, rng);
        float[] y = new float[promptTokens * Vocab];
        var f32Tensors = f32.Select(layer => layer.Select((w, i) => ctx.Upload(w, LayerShapes[i].N, LayerShapes[i].K)).ToArray()).ToArray();
        using var headTensor = ctx.Upload(headF32, Vocab, Hidden);
        for (int l = 0; l < DistinctLayers; l++) f32[l] = null!; // the tensors hold copies; drop the arrays
        headF32 = null!;
        GC.Collect();

        // Decode: one token through every linear layer of the language model.
        using var a1 = ctx.Upload(x.AsSpan(0, Intermediate).ToArray(), 1, Intermediate);
        using var c1 = ctx.Allocate(1, Vocab);
        double decodeF32 = Best(3, () =>
        {
            for (int layer = 0; layer < Layers; layer++)
                for (int i = 0; i < LayerShapes.Length; i++)
                    ctx.Gemm(a1, f32Tensors[layer % DistinctLayers][i], c1, 1, LayerShapes[i].N, LayerShapes[i].K);
            ctx.Gemm(a1, headTensor, c1, 1, Vocab, Hidden);
        });
        double decodeBf16 = Best(3, () =>
        {
            for (int layer = 0; layer < Layers; layer++)
                for (int i = 0; i < LayerShapes.Length; i++)
                    CpuBf16Gemm.Run(x, bf16[layer % DistinctLayers][i], y, 1, LayerShapes[i].N, LayerShapes[i].K);
            CpuBf16Gemm.Run(x, headBf16, y, 1, Vocab, Hidden);
        });
        double bytesBf16 = 2.0 * stepParams, bytesF32 = 4.0 * stepParams;
        Console.WriteLine($"decode step GEMVs (28 layers q,k,v,o,gate,up,down + lm_head {Vocab}×{Hidden}; {stepParams / 1e9:F2} G weights), best of 3:");
        Console.WriteLine($"  f32  {decodeF32 * 1e3,8:F1} ms  {bytesF32 / decodeF32 / 1e9,5:F1} GB/s of weights");
        Console.WriteLine($"  bf16 {decodeBf16 * 1e3,8:F1} ms  {bytesBf16 / decodeBf16 / 1e9,5:F1} GB/s of weights");
        // The machine is shared: measure the bandwidth again after the GEMVs and hold them to the higher (stricter) figure.
        double again = ReadBandwidth.Measure();
        GC.Collect();
        if (again > bandwidth)
        {
            Console.WriteLine($"  (read bandwidth measured again: {again / 1e9:F1} GB/s, used below)");
            bandwidth = again;
        }
        Console.WriteLine($"  f32  {bytesF32 / bandwidth / decodeF32 * 100,5:F1}% and bf16 {bytesBf16 / bandwidth / decodeBf16 * 100,5:F1}% of the read roofline at {bandwidth / 1e9:F1} GB/s");
        Console.WriteLine($"  bf16 decode speed-up over f32: {decodeF32 / decodeBf16:F2}x   (targets: ≥1.70x, ≥80% of roofline)");

        // Prefill: a prompt's tokens through one layer's linear weights.
        long layerFlops = 2L * promptTokens * layerParams;
        using var aPrompt = ctx.Upload(x.AsSpan(0, promptTokens * Intermediate).ToArray(), promptTokens, Intermediate);
        using var cPrompt = ctx.Allocate(promptTokens, Intermediate);
        double prefillF32 = Best(3, () =>
        {
            for (int i = 0; i < LayerShapes.Length; i++)
                ctx.Gemm(aPrompt, f32Tensors[0][i], cPrompt, promptTokens, LayerShapes[i].N, LayerShapes[i].K);
        });
        double prefillBf16 = Best(3, () =>
        {
            for (int i = 0; i < LayerShapes.Length; i++)
                CpuBf16Gemm.Run(x, bf16[0][i], y, promptTokens, LayerShapes[i].N, LayerShapes[i].K);
        });
        Console.WriteLine($"prefill GEMMs ({promptTokens} tokens × one layer's 7 linear weights), best of 3:");
        Console.WriteLine($"  f32  {prefillF32 * 1e3,8:F1} ms  {layerFlops / prefillF32 / 1e9,6:F1} GFLOP/s");
        Console.WriteLine($"  bf16 {prefillBf16 * 1e3,8:F1} ms  {layerFlops / prefillBf16 / 1e9,6:F1} GFLOP/s  ({prefillF32 / prefillBf16:F2}x f32; target ≥1.00x)");

        OneDnn(promptTokens, x, bf16[0], layerFlops, prefillBf16);
        foreach (var layer in f32Tensors) foreach (var t in layer) t.Dispose();
    }

    /// <summary>oneDNN's bf16 matmul on the same prefill shapes, where the library is installed (measured, not used by the runtime).</summary>
    private static void OneDnn(int tokens, float[] x, ushort[][] weights, long layerFlops, double ours)
    {
        OneDnnMatmul.Engine? engine = OneDnnMatmul.Engine.TryCreate(out string why);
        if (engine is null)
        {
            Console.WriteLine($"oneDNN bf16 matmul: not measured ({why})");
            return;
        }
        using (engine)
        {
            ushort[] src = x.AsSpan(0, tokens * Intermediate).ToArray().Select(v => (ushort)(BitConverter.SingleToInt32Bits(Bf16.Round(v)) >>> 16)).ToArray();
            float[] dst = new float[tokens * Intermediate];
            OneDnnMatmul.Matmul[] matmuls;
            try
            {
                matmuls = LayerShapes.Select(s => engine.Bf16Matmul(tokens, s.N, s.K)).ToArray();
            }
            catch (NotSupportedException e)
            {
                Console.WriteLine($"oneDNN {engine.Version} bf16 matmul: not available — {e.Message}");
                return;
            }
            try
            {
                double time = Best(3, () =>
                {
                    for (int i = 0; i < matmuls.Length; i++) matmuls[i].Execute(src, weights[i], dst);
                });
                Console.WriteLine($"oneDNN {engine.Version} bf16 matmul (implementation {matmuls[0].Implementation}), same prefill GEMMs:");
                Console.WriteLine($"  {time * 1e3,8:F1} ms  {layerFlops / time / 1e9,6:F1} GFLOP/s  (ours bf16 is {time / ours:F2}x its speed)");
            }
            finally
            {
                foreach (var m in matmuls) m.Dispose();
            }
        }
    }

    private static (float[] F32, ushort[] Bf16) RandomWeights(int count, Random rng)
    {
        var f = new float[count];
        var b = new ushort[count];
        for (int i = 0; i < count; i++)
        {
            float v = Bf16.Round((float)(rng.NextDouble() - 0.5) * 0.05f);
            f[i] = v;
            b[i] = (ushort)(BitConverter.SingleToInt32Bits(v) >>> 16);
        }
        return (f, b);
    }

    private static float[] RandomActivations(int count, Random rng) =>
        Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();

    /// <summary>Seconds of the fastest of <paramref name="runs"/> runs, after one warm-up run.</summary>
    private static double Best(int runs, Action action)
    {
        action();
        double best = double.MaxValue;
        for (int i = 0; i < runs; i++)
        {
            var t = Stopwatch.StartNew();
            action();
            best = Math.Min(best, t.Elapsed.TotalSeconds);
        }
        return best;
    }
}
