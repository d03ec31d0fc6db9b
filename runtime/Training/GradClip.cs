using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime.Training;

/// <summary>
/// Global-norm gradient clipping as torch.nn.utils.clip_grad_norm_ does it: norm = √(Σ g²) over every gradient,
/// then, when norm exceeds the limit, every gradient is scaled by limit / (norm + 1e-6). With all gradients in one
/// flat buffer (<see cref="ParameterSet.AllGrads"/>) both halves are one pass each.
/// </summary>
public static class GradClip
{
    private const int MaxGroups = 256, GroupSize = 256;

    /// <summary>√(Σ g²) over the whole tensor, summed in float64 on the host from per-group partial sums.</summary>
    public static float GlobalNorm(ComputeContext ctx, DeviceTensor grads) => GlobalNorm(ctx, grads, MaxGroups);

    /// <summary>As above with at most <paramref name="maxGroups"/> groups (tests use few, to exercise the grid-stride loop cheaply).</summary>
    internal static float GlobalNorm(ComputeContext ctx, DeviceTensor grads, int maxGroups) => (float)Math.Sqrt(SumOfSquares(ctx, grads, maxGroups));

    /// <summary>Σ g² over the tensor, in float64 from per-chunk partial sums (ZeRO-1 adds the ranks' blocks' sums).</summary>
    public static double SumOfSquares(ComputeContext ctx, DeviceTensor grads) => SumOfSquares(ctx, grads, MaxGroups);

    private static double SumOfSquares(ComputeContext ctx, DeviceTensor grads, int maxGroups)
    {
        if (grads.IsInt) throw new ArgumentException($"gradients must be float32, got {grads}");
        if (grads.Length == 0) return 0;
        if (ctx.IsCpu)
        {
            float[] g = grads.HostArray;
            int offset = grads.Offset, length = grads.Length;
            const int chunk = 1 << 16;
            int chunks = (length + chunk - 1) / chunk;
            var partial = new double[chunks];
            Parallel.For(0, chunks, c =>
            {
                int start = c * chunk;
                partial[c] = System.Numerics.Tensors.TensorPrimitives.SumOfSquares(g.AsSpan(offset + start, Math.Min(chunk, length - start)));
            });
            return partial.Sum();
        }
        int groups = (int)Math.Min(maxGroups, ((long)grads.Length + GroupSize - 1) / GroupSize);
        using DeviceTensor partials = ctx.Allocate(groups);
        var kernel = ctx.CachedKernel("grad-sum-of-squares", typeof(GradClip), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(SumOfSquaresKernel));
        kernel(new KernelConfig(groups, GroupSize), grads.View, partials.View, grads.Length);
        double total = 0;
        foreach (float p in ctx.Download(partials)) total += p;
        return total;
    }

    /// <summary>g ← g · factor over the whole tensor.</summary>
    public static void Scale(ComputeContext ctx, DeviceTensor grads, float factor)
    {
        if (grads.IsInt) throw new ArgumentException($"gradients must be float32, got {grads}");
        if (grads.Length == 0) return;
        if (ctx.IsCpu)
        {
            Span<float> g = grads.Span;
            System.Numerics.Tensors.TensorPrimitives.Multiply(g, factor, g);
            return;
        }
        var kernel = ctx.CachedKernel("grad-scale", typeof(GradClip), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ScaleKernel));
        kernel(grads.Length, grads.View, factor);
    }

    /// <summary>Clips to <paramref name="maxNorm"/> as PyTorch does and returns the norm before clipping.</summary>
    public static float ClipToNorm(ComputeContext ctx, DeviceTensor grads, float maxNorm)
    {
        float norm = GlobalNorm(ctx, grads);
        float factor = maxNorm / (norm + 1e-6f);
        if (factor < 1f) Scale(ctx, grads, factor);
        return norm;
    }

    /// <summary>Each thread sums a grid-strided share; the group folds its 256 sums in shared memory into one partial.</summary>
    private static void SumOfSquaresKernel(ArrayView<float> g, ArrayView<float> partials, int length)
    {
        ArrayView<float> shared = SharedMemory.Allocate<float>(GroupSize);
        int thread = Group.IdxX;
        float sum = 0f;
        for (int i = Grid.IdxX * GroupSize + thread; i < length; i += Grid.DimX * GroupSize) sum += g[i] * g[i];
        shared[thread] = sum;
        Group.Barrier();
        for (int half = GroupSize / 2; half > 0; half /= 2)
        {
            if (thread < half) shared[thread] += shared[thread + half];
            Group.Barrier();
        }
        if (thread == 0) partials[Grid.IdxX] = shared[0];
    }

    private static void ScaleKernel(Index1D i, ArrayView<float> g, float factor) => g[i] *= factor;
}
