using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime.Training;

/// <summary>Scalars of one AdamW step, precomputed on the host (one struct keeps the kernel signature short).</summary>
public struct AdamWStepArgs
{
    public int DecayEnd, TrainableEnd;
    public float Lr, Beta1, Beta2, Eps, DecayFactor, StepSize, InverseSqrtCorrection2;
}

/// <summary>
/// AdamW (Loshchilov and Hutter), exactly as PyTorch's torch.optim.AdamW computes it, as one fused pass over
/// the trainable range [0, TrainableEnd) of a <see cref="ParameterSet"/>. For each element, at step t ≥ 1:
/// <code>w ← w · (1 − lr·wd)                      (decoupled decay; only for index &lt; DecayEnd)
/// m ← β1·m + (1 − β1)·g
/// v ← β2·v + (1 − β2)·g²
/// w ← w − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)</code>
/// Frozen parameters lie past TrainableEnd and are never touched. With bf16 compute
/// (<see cref="ParameterSet.Bf16Compute"/>) the same kernel also writes the updated master weight rounded to bfloat16
/// (<see cref="Bf16.RoundBits"/>, ties to even) into the 16-bit compute weights the next forward pass reads, and the
/// f32 compute copies of the wide parameters (norms, biases) are refreshed after it.
/// </summary>
public sealed class AdamW
{
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public float WeightDecay { get; }

    /// <summary>Steps taken so far (bias correction uses t = Step after the increment).</summary>
    public int Step { get; private set; }

    public AdamW(float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.01f)
    {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0) || !(weightDecay >= 0))
            throw new ArgumentException($"AdamW needs 0 ≤ β1, β2 < 1, ε > 0, weight decay ≥ 0; got β1={beta1}, β2={beta2}, ε={eps}, wd={weightDecay}");
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
    }

    /// <summary>Restores the step count (when resuming from a checkpoint with its m and v).</summary>
    public void SetStep(int step) => Step = step >= 0 ? step : throw new ArgumentOutOfRangeException(nameof(step));

    /// <summary>
    /// One update of every trainable parameter the moments cover (all of them; under ZeRO-1 this rank's block,
    /// <see cref="ParameterSet.MomentStart"/>) from the gradients in <paramref name="parameters"/>. The kernel runs on
    /// views of that block, so decay applies below DecayEnd − MomentStart within it.
    /// </summary>
    public void Update(ComputeContext ctx, ParameterSet parameters, float lr)
    {
        Step++;
        double correction1 = 1 - Math.Pow(Beta1, Step), correction2 = 1 - Math.Pow(Beta2, Step);
        int start = parameters.MomentStart, count = parameters.MomentCount;
        var args = new AdamWStepArgs
        {
            DecayEnd = Math.Clamp(parameters.DecayEnd - start, 0, count), TrainableEnd = count,
            Lr = lr, Beta1 = Beta1, Beta2 = Beta2, Eps = Eps,
            DecayFactor = 1f - lr * WeightDecay,
            StepSize = (float)(lr / correction1),
            InverseSqrtCorrection2 = (float)(1 / Math.Sqrt(correction2)),
        };
        if (args.TrainableEnd == 0) return;
        DeviceTensor w = parameters.AllWeights.Slice(start, count, count), g = parameters.AllGrads.Slice(start, count, count);
        DeviceTensor m = parameters.MomentM, v = parameters.MomentV;
        bool bf16 = parameters.Bf16Compute;
        DeviceTensor? compute = bf16 ? parameters.Bf16ComputeWeights!.Slice(start, count, count) : null;
        if (ctx.IsCpu)
        {
            // The block's elements: the flat arrays from these offsets on (index i of the kernel is element start + i).
            float[] wa = w.HostArray, ga = g.HostArray, ma = m.HostArray, va = v.HostArray;
            int wo = w.Offset, go = g.Offset, mo = m.Offset, vo = v.Offset, co = compute?.Offset ?? 0;
            ushort[]? ca = bf16 ? parameters.Bf16ComputeBits : null;
            const int chunk = 1 << 14;
            int chunks = (args.TrainableEnd + chunk - 1) / chunk;
            Parallel.For(0, chunks, c =>
            {
                int end = Math.Min(args.TrainableEnd, (c + 1) * chunk);
                for (int i = c * chunk; i < end; i++)
                {
                    UpdateElement(i, wa, wo, ga, go, ma, mo, va, vo, args);
                    if (ca is not null) ca[co + i] = Bf16.RoundBits(wa[wo + i]);
                }
            });
            if (bf16) parameters.RoundWideComputeWeights();
            return;
        }
        if (bf16)
        {
            var fused = ctx.CachedKernel("adamw-bf16", typeof(AdamWStepArgs), accelerator =>
                accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<ushort>, AdamWStepArgs>(AdamWBf16Kernel));
            fused(args.TrainableEnd, w.View, g.View, m.View, v.View, compute!.Bf16View, args);
            parameters.RoundWideComputeWeights();
            return;
        }
        var kernel = ctx.CachedKernel("adamw", typeof(AdamWStepArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWStepArgs>(
                AdamWKernel));
        kernel(args.TrainableEnd, w.View, g.View, m.View, v.View, args);
    }

    private static void AdamWKernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamWStepArgs a)
    {
        float wi = w[i];
        if (i < a.DecayEnd) wi *= a.DecayFactor;
        float gi = g[i];
        float mi = a.Beta1 * m[i] + (1f - a.Beta1) * gi;
        float vi = a.Beta2 * v[i] + (1f - a.Beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - a.StepSize * mi / (XMath.Sqrt(vi) * a.InverseSqrtCorrection2 + a.Eps);
    }

    /// <summary><see cref="AdamWKernel"/>, then the new master weight rounded to bf16 into the 16-bit compute weights.</summary>
    private static void AdamWBf16Kernel(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v,
        ArrayView<ushort> compute, AdamWStepArgs a)
    {
        AdamWKernel(i, w, g, m, v, a);
        compute[i] = Bf16.RoundBits(w[i]);
    }

    private static void UpdateElement(int i, float[] w, int wo, float[] g, int go, float[] m, int mo, float[] v, int vo, in AdamWStepArgs a)
    {
        float wi = w[wo + i];
        if (i < a.DecayEnd) wi *= a.DecayFactor;
        float gi = g[go + i];
        float mi = a.Beta1 * m[mo + i] + (1f - a.Beta1) * gi;
        float vi = a.Beta2 * v[vo + i] + (1f - a.Beta2) * gi * gi;
        m[mo + i] = mi;
        v[vo + i] = vi;
        w[wo + i] = wi - a.StepSize * mi / (MathF.Sqrt(vi) * a.InverseSqrtCorrection2 + a.Eps);
    }
}
