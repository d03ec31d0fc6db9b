using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Training.Kernels;

using Reference = Qwen2VL.Tests.Runtime.Reference;

public class OptimizerTests
{
    private static ParameterSet Model(ComputeContext ctx)
    {
        var set = new ParameterSet(ctx);
        set.Add("visual.blocks.0.attn.qkv.weight", [6, 4]);
        set.Add("visual.blocks.0.attn.qkv.bias", [6], decay: false);
        set.Add("model.layers.0.mlp.up_proj.weight", [5, 4]);
        set.Add("model.layers.0.self_attn.q_proj.weight", [4, 4]);
        set.Add("model.layers.0.input_layernorm.weight", [4], decay: false);
        set.Add("model.layers.1.mlp.down_proj.weight", [4, 3]);
        set.Add("lm_head.weight", [7, 4], trainable: false);
        return set;
    }

    [Fact]
    public void LayoutPutsDecayedFirstThenUndecayedThenFrozen()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using ParameterSet set = Model(ctx);
        Assert.Equal(2, set.Freeze("visual.*"));
        Assert.Equal(2, set.Freeze("model.layers.*.mlp.*"));
        set.Build();
        Assert.Equal(["model.layers.0.self_attn.q_proj.weight", "model.layers.0.input_layernorm.weight",
            "visual.blocks.0.attn.qkv.weight", "visual.blocks.0.attn.qkv.bias", "model.layers.0.mlp.up_proj.weight",
            "model.layers.1.mlp.down_proj.weight", "lm_head.weight"], set.Parameters.Select(p => p.Name));
        Assert.Equal(16, set.DecayEnd);
        Assert.Equal(20, set.TrainableEnd);
        Assert.Equal(20 + 24 + 6 + 20 + 12 + 28, set.Length);
        Assert.Equal(20, set.AllGrads.Length);
        Assert.Equal([4], set.Grad("model.layers.0.input_layernorm.weight").Shape);
        Assert.Equal(16, set.Weight("model.layers.0.input_layernorm.weight").Offset);
        Assert.Throws<InvalidOperationException>(() => set.Grad("visual.blocks.0.attn.qkv.weight"));
        Assert.Throws<InvalidOperationException>(() => set.Freeze("lm_head.*"));
    }

    /// <summary>torch.optim.AdamW's update in float64, decay applied to the weight before the Adam step.</summary>
    private static void ReferenceStep(double[] w, double[] m, double[] v, double[] g, int t, double lr, double wd, bool[] decay,
        double beta1, double beta2, double eps)
    {
        for (int i = 0; i < g.Length; i++)
        {
            if (decay[i]) w[i] *= 1 - lr * wd;
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
            double mHat = m[i] / (1 - Math.Pow(beta1, t)), vHat = v[i] / (1 - Math.Pow(beta2, t));
            w[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
        }
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void AdamWMatchesPyTorchFormulaAndLeavesFrozenWeightsAlone(DeviceKind kind)
    {
        using ComputeContext ctx = ComputeContext.Create(kind);
        using ParameterSet set = Model(ctx);
        set.Freeze("visual.*");
        set.Build();
        float[] initial = Reference.Random(set.Length, 101);
        ctx.CopyFrom(initial, set.AllWeights);
        const double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, wd = 0.1;
        var optimizer = new AdamW((float)beta1, (float)beta2, (float)eps, (float)wd);

        int trainable = set.TrainableEnd;
        double[] w = initial.Take(trainable).Select(x => (double)x).ToArray(), m = new double[trainable], v = new double[trainable];
        bool[] decay = Enumerable.Range(0, trainable).Select(i => i < set.DecayEnd).ToArray();
        for (int step = 0; step < 5; step++)
        {
            float lr = LearningRate.CosineWithWarmup(step, 2, 5, 1e-2f, 1e-3f);
            // Step 0 has lr 0 (warm-up from zero): the moments still advance, the weights move by decay only (none).
            float[] g = Reference.Random(trainable, 200 + step, step == 3 ? 1e-4f : 1f);
            set.ZeroGrads();
            ctx.CopyFrom(g, set.AllGrads);
            optimizer.Update(ctx, set, lr);
            ReferenceStep(w, m, v, g.Select(x => (double)x).ToArray(), step + 1, lr, wd, decay, beta1, beta2, eps);
        }
        Assert.Equal(5, optimizer.Step);
        float[] after = ctx.Download(set.AllWeights);
        Reference.AssertClose($"AdamW weights {kind}", w, after.Take(trainable).ToArray(), 1e-6);
        Reference.AssertClose($"AdamW m {kind}", m, ctx.Download(set.MomentM), 1e-6);
        Reference.AssertClose($"AdamW v {kind}", v, ctx.Download(set.MomentV), 1e-6);
        Assert.Equal(initial.Skip(trainable), after.Skip(trainable)); // frozen: bit-identical
        Assert.Equal(initial.Skip(trainable).ToArray(), ctx.Download(set.Weight("visual.blocks.0.attn.qkv.weight")).Concat(
            ctx.Download(set.Weight("visual.blocks.0.attn.qkv.bias"))).Concat(ctx.Download(set.Weight("lm_head.weight"))));
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void GlobalNormAndClipping(DeviceKind kind)
    {
        const int length = 3001;
        float[] g = Reference.Random(length, 111, 3f);
        double norm = Math.Sqrt(g.Sum(x => (double)x * x));
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor t = ctx.Upload(g, length);
        Assert.Equal(norm, GradClip.GlobalNorm(ctx, t), norm * 1e-6);
        // Two groups of 256 threads cover 3001 elements only through the grid-stride loop.
        Assert.Equal(norm, GradClip.GlobalNorm(ctx, t, maxGroups: 2), norm * 1e-6);

        GradClip.Scale(ctx, t, 0.5f);
        Reference.AssertClose($"scale {kind}", g.Select(x => x * 0.5).ToArray(), ctx.Download(t), 1e-7);

        // Half the norm is now norm / 2; clipping to norm / 8 scales by (norm/8) / (norm/2 + 1e-6).
        float before = GradClip.ClipToNorm(ctx, t, (float)(norm / 8));
        Assert.Equal(norm / 2, before, norm * 1e-6);
        Assert.Equal(norm / 8, GradClip.GlobalNorm(ctx, t), norm * 1e-6);
        // Below the limit nothing changes.
        float[] clipped = ctx.Download(t);
        GradClip.ClipToNorm(ctx, t, (float)norm);
        Assert.Equal(clipped, ctx.Download(t));
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(5, 5e-4)]
    [InlineData(9, 9e-4)]
    [InlineData(10, 1e-3)]
    [InlineData(60, 5.05e-4)]             // halfway: min + (peak − min) / 2
    [InlineData(35, 1e-5 + 0.99e-3 * 0.5 * (1 + 0.70710678118654752))] // a quarter: cos(π/4)
    [InlineData(110, 1e-5)]
    [InlineData(500, 1e-5)]
    public void CosineWithWarmup(int step, double expected)
    {
        Assert.Equal(expected, LearningRate.CosineWithWarmup(step, 10, 110, 1e-3f, 1e-5f), 1e-9);
    }
}
