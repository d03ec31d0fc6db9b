using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime.Training;

/// <summary>Sizes of one vocabulary chunk (one struct keeps the kernel signatures short).</summary>
public struct CrossEntropyChunkArgs
{
    public int Rows, Columns, First;
    public float Scale;
}

/// <summary>
/// The language-model head fused with the cross-entropy loss, for training: logits_t = hidden_t · Wᵀ over a
/// vocabulary of V rows, loss = Σ over targets t ≠ −100 of (logsumexp(logits_t) − logits_t[target_t]).
/// The full [T, V] float32 logits are never materialised: the vocabulary is processed in chunks of columns,
/// each chunk's logits made by the GEMM and folded into a per-row online logsumexp (running max m, running sum
/// s rescaled by e^(m_old − m_new)). Backward recomputes the logits chunk by chunk and, with
/// G = gradScale · (softmax − onehot(target)) (zero rows for ignored targets), adds dHidden = G·W_c and
/// dW_c += Gᵀ·hidden. Targets are already shifted by the caller.
/// </summary>
public static class LmHeadCrossEntropy
{
    public const int IgnoreIndex = -100;

    /// <summary>Chunk logits kept at most this many floats (64 MiB).</summary>
    private const int ChunkBudget = 1 << 24;

    /// <summary>Summed loss over the counted targets and their count (the mean is lossSum / count).</summary>
    public static void Forward(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, int[] targets, out float lossSum, out int count) =>
        Forward(ctx, hidden, weight, targets, out lossSum, out count, 0);

    internal static void Forward(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, int[] targets,
        out float lossSum, out int count, int chunkColumns)
    {
        (int t, int h, int v) = Check(hidden, weight, targets);
        int chunk = ChunkColumns(t, v, chunkColumns);
        using DeviceTensor targetTensor = ctx.UploadInt(targets, t);
        using DeviceTensor stats = ctx.Allocate(3 * t + 1);
        using DeviceTensor logits = ctx.Allocate(t * chunk);
        RowStats(ctx, hidden, weight, targetTensor, stats, logits, t, h, v, chunk);
        (lossSum, count) = (SumLoss(ctx, stats, targetTensor, t), CountTargets(targets));
        ctx.Synchronize(); // the scratch buffers are freed on return
    }

    /// <summary>
    /// dHidden [T, H] is overwritten; dWeight [V, H] is accumulated into (null: a frozen head, no weight gradient).
    /// The gradient of the loss sum is scaled by gradScale.
    /// </summary>
    public static void Backward(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, int[] targets, float gradScale,
        DeviceTensor dHidden, DeviceTensor? dWeight) =>
        Backward(ctx, hidden, weight, targets, gradScale, dHidden, dWeight, 0);

    internal static void Backward(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, int[] targets, float gradScale,
        DeviceTensor dHidden, DeviceTensor? dWeight, int chunkColumns)
    {
        (int t, int h, int v) = Check(hidden, weight, targets);
        CheckGradients(dHidden, dWeight, t, h, v);
        int chunk = ChunkColumns(t, v, chunkColumns);
        using DeviceTensor targetTensor = ctx.UploadInt(targets, t);
        using DeviceTensor stats = ctx.Allocate(3 * t + 1);
        using DeviceTensor logits = ctx.Allocate(t * chunk);
        RowStats(ctx, hidden, weight, targetTensor, stats, logits, t, h, v, chunk);
        GradientPass(ctx, hidden, weight, targets, targetTensor, stats, logits, gradScale, dHidden, dWeight, t, h, v, chunk);
        ctx.Synchronize(); // the scratch buffers are freed on return
    }

    /// <summary>
    /// The training step's use: the loss sum and count of <see cref="Forward"/> and the gradients of
    /// <see cref="Backward"/> from one computation of the row statistics, so the head GEMM runs twice over the
    /// vocabulary (statistics, then gradient) instead of three times. At most one chunk of logits,
    /// [T, <see cref="ChunkColumns"/>], exists at a time. With <paramref name="scratch"/>, the targets, the row
    /// statistics and the chunk of logits live in its reused buffers (no device allocation per call); the loss is
    /// summed on the device, so the only bytes that come back are the loss sum's four.
    /// </summary>
    public static (float LossSum, int Count) ForwardBackward(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, int[] targets,
        float gradScale, DeviceTensor dHidden, DeviceTensor? dWeight, int chunkColumns = 0, StagingBuffers? scratch = null)
    {
        (int t, int h, int v) = Check(hidden, weight, targets);
        CheckGradients(dHidden, dWeight, t, h, v);
        int chunk = ChunkColumns(t, v, chunkColumns);
        DeviceTensor? ownTargets = null, ownStats = null, ownLogits = null;
        try
        {
            DeviceTensor targetTensor = scratch?.UploadInt("cross-entropy-targets", targets, t) ?? (ownTargets = ctx.UploadInt(targets, t));
            DeviceTensor stats = scratch?.View("cross-entropy-stats", 3 * t + 1) ?? (ownStats = ctx.Allocate(3 * t + 1));
            DeviceTensor logits = scratch?.View("cross-entropy-logits", t * chunk) ?? (ownLogits = ctx.Allocate(t * chunk));
            RowStats(ctx, hidden, weight, targetTensor, stats, logits, t, h, v, chunk);
            float lossSum = SumLoss(ctx, stats, targetTensor, t);
            GradientPass(ctx, hidden, weight, targets, targetTensor, stats, logits, gradScale, dHidden, dWeight, t, h, v, chunk);
            if (scratch is null) ctx.Synchronize(); // the scratch buffers are freed on return
            return (lossSum, CountTargets(targets));
        }
        finally
        {
            ownTargets?.Dispose();
            ownStats?.Dispose();
            ownLogits?.Dispose();
        }
    }

    /// <summary>How many targets the loss counts (those ≠ −100).</summary>
    public static int CountTargets(ReadOnlySpan<int> targets)
    {
        int count = 0;
        foreach (int target in targets)
            if (target != IgnoreIndex) count++;
        return count;
    }

    /// <summary>
    /// Vocabulary columns per chunk for <paramref name="rows"/> rows: <paramref name="requested"/> when given (capped at
    /// the vocabulary), else as many as keep the chunk's logits within <see cref="ChunkBudgetFloats"/> (at least 64).
    /// </summary>
    public static int ChunkColumns(int rows, int vocab, int requested = 0) =>
        Math.Max(1, requested > 0 ? Math.Min(requested, vocab) : Math.Min(vocab, Math.Max(64, ChunkBudget / Math.Max(rows, 1))));

    /// <summary>The default budget of one chunk of logits, in floats (64 MiB).</summary>
    public const int ChunkBudgetFloats = ChunkBudget;

    /// <summary>
    /// Σ over counted rows of logsumexp − target logit, in double in row order, computed where the statistics are
    /// ([T, 3] in the first 3·T floats of <paramref name="stats"/>, the sum written into its last float): only that
    /// float comes back. On an accelerator one thread walks the rows (T is the batch's tokens; a tree reduction would
    /// change the order of the double sum and so the bits of the loss).
    /// </summary>
    private static float SumLoss(ComputeContext ctx, DeviceTensor stats, DeviceTensor targetTensor, int t)
    {
        var result = stats.Slice(3 * t, 1, 1);
        if (ctx.IsCpu)
        {
            ReadOnlySpan<float> s = stats.Span;
            ReadOnlySpan<int> targets = targetTensor.IntSpan;
            double sum = 0;
            for (int row = 0; row < t; row++)
            {
                if (targets[row] == IgnoreIndex) continue;
                sum += (double)s[row * 3] + Math.Log(s[row * 3 + 1]) - s[row * 3 + 2];
            }
            result.Span[0] = (float)sum;
        }
        else
        {
            var kernel = ctx.CachedKernel("cross-entropy-loss-sum", typeof(CrossEntropyChunkArgs), accelerator =>
                accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int>(LossSumKernel));
            kernel(1, stats.View, targetTensor.IntView, t);
        }
        return ctx.Download(result)[0];
    }

    /// <summary>One thread: the double sum of the counted rows' losses, written as float after the [T, 3] statistics.</summary>
    private static void LossSumKernel(Index1D index, ArrayView<float> stats, ArrayView<int> targets, int rows)
    {
        double sum = 0;
        for (int row = 0; row < rows; row++)
        {
            if (targets[row] == IgnoreIndex) continue;
            sum += (double)stats[row * 3] + XMath.Log((double)stats[row * 3 + 1]) - stats[row * 3 + 2];
        }
        stats[3 * rows] = (float)sum;
    }

    private static void CheckGradients(DeviceTensor dHidden, DeviceTensor? dWeight, int t, int h, int v)
    {
        if (dHidden.IsInt || dHidden.Length != t * h || dWeight is not null && (dWeight.IsInt || dWeight.Length != v * h))
            throw new ArgumentException($"dHidden must be float32 [{t}, {h}] and dWeight float32 [{v}, {h}]; got {dHidden}, {dWeight}");
    }

    /// <summary>Recomputes each chunk's logits, turns them into G = gradScale · (softmax − onehot) and applies both GEMMs.</summary>
    private static void GradientPass(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, int[] targets, DeviceTensor targetTensor,
        DeviceTensor stats, DeviceTensor logits, float gradScale, DeviceTensor dHidden, DeviceTensor? dWeight, int t, int h, int v, int chunk)
    {
        if (v == 0 || t == 0) { ctx.Clear(dHidden); return; }
        for (int first = 0; first < v; first += chunk)
        {
            int columns = Math.Min(chunk, v - first);
            DeviceTensor g = logits.Slice(0, t * columns, t, columns);
            DeviceTensor w = weight.Slice(first * h, columns * h, columns, h);
            ctx.Gemm(hidden, w, g, t, columns, h);
            var args = new CrossEntropyChunkArgs { Rows = t, Columns = columns, First = first, Scale = gradScale };
            if (ctx.IsCpu) CpuGradient(g, stats, targets, args);
            else
            {
                var kernel = ctx.CachedKernel("cross-entropy-gradient", typeof(CrossEntropyChunkArgs), accelerator =>
                    accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, CrossEntropyChunkArgs>(GradientKernel));
                kernel(t * columns, g.View, stats.View, targetTensor.IntView, args);
            }
            ctx.GemmNN(g, w, dHidden, t, h, columns, accumulate: first > 0);
            if (dWeight is not null)
                ctx.GemmTN(g, hidden, dWeight.Slice(first * h, columns * h, columns, h), columns, h, t, accumulate: true);
        }
    }

    private static (int T, int H, int V) Check(DeviceTensor hidden, DeviceTensor weight, int[] targets)
    {
        if (hidden.IsInt || weight.IsInt || hidden.Shape.Length != 2 || weight.Shape.Length != 2 || hidden.Shape[1] != weight.Shape[1])
            throw new ArgumentException($"lm head cross-entropy needs float32 hidden [T, H] and weight [V, H]; got {hidden}, {weight}");
        int t = hidden.Shape[0], h = hidden.Shape[1], v = weight.Shape[0];
        if (targets.Length != t)
            throw new ArgumentException($"lm head cross-entropy: {targets.Length} targets for {t} hidden rows");
        for (int i = 0; i < t; i++)
            if (targets[i] != IgnoreIndex && (targets[i] < 0 || targets[i] >= v))
                throw new ModelException($"label {targets[i]} at position {i} is outside the vocabulary of {v} tokens (use {IgnoreIndex} to ignore a position)");
        return (t, h, v);
    }

    /// <summary>
    /// Per row [T, 3] into <paramref name="stats"/>: (max m, Σ e^(logit − m), logit of the target) over the whole
    /// vocabulary; logsumexp = m + log s. <paramref name="logits"/> holds one chunk ([T · chunk] floats).
    /// </summary>
    private static void RowStats(ComputeContext ctx, DeviceTensor hidden, DeviceTensor weight, DeviceTensor targets,
        DeviceTensor stats, DeviceTensor logits, int t, int h, int v, int chunk)
    {
        if (t == 0) return;
        if (ctx.IsCpu)
        {
            Span<float> s = stats.Span;
            for (int row = 0; row < t; row++) (s[row * 3], s[row * 3 + 1]) = (float.NegativeInfinity, 0f);
        }
        for (int first = 0; first < v; first += chunk)
        {
            int columns = Math.Min(chunk, v - first);
            DeviceTensor x = logits.Slice(0, t * columns, t, columns);
            ctx.Gemm(hidden, weight.Slice(first * h, columns * h, columns, h), x, t, columns, h);
            var args = new CrossEntropyChunkArgs { Rows = t, Columns = columns, First = first };
            if (ctx.IsCpu) CpuFold(x, stats, targets.IntSpan.ToArray(), args);
            else
            {
                var kernel = ctx.CachedKernel("cross-entropy-fold", typeof(CrossEntropyChunkArgs), accelerator =>
                    accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, CrossEntropyChunkArgs>(FoldKernel));
                kernel(t, x.View, stats.View, targets.IntView, args);
            }
        }
    }

    private static void CpuFold(DeviceTensor logits, DeviceTensor stats, int[] targets, CrossEntropyChunkArgs a)
    {
        float[] x = logits.HostArray, s = stats.HostArray;
        int xo = logits.Offset, so = stats.Offset;
        Parallel.For(0, a.Rows, row =>
        {
            ReadOnlySpan<float> r = x.AsSpan(xo + row * a.Columns, a.Columns);
            float m = s[so + row * 3], sum = s[so + row * 3 + 1];
            float newMax = MathF.Max(m, System.Numerics.Tensors.TensorPrimitives.Max(r));
            float chunkSum = 0f;
            for (int c = 0; c < r.Length; c++) chunkSum += MathF.Exp(r[c] - newMax);
            s[so + row * 3] = newMax;
            s[so + row * 3 + 1] = sum * MathF.Exp(m - newMax) + chunkSum;
            int target = targets[row] - a.First;
            if (target >= 0 && target < a.Columns) s[so + row * 3 + 2] = r[target];
        });
    }

    private static void CpuGradient(DeviceTensor logits, DeviceTensor stats, int[] targets, CrossEntropyChunkArgs a)
    {
        float[] x = logits.HostArray, s = stats.HostArray;
        int xo = logits.Offset, so = stats.Offset;
        Parallel.For(0, a.Rows, row =>
        {
            Span<float> r = x.AsSpan(xo + row * a.Columns, a.Columns);
            if (targets[row] == IgnoreIndex) { r.Clear(); return; }
            float logSumExp = s[so + row * 3] + MathF.Log(s[so + row * 3 + 1]);
            for (int c = 0; c < r.Length; c++) r[c] = MathF.Exp(r[c] - logSumExp) * a.Scale;
            int target = targets[row] - a.First;
            if (target >= 0 && target < a.Columns) r[target] -= a.Scale;
        });
    }

    /// <summary>One thread per row folds the chunk into the row's (m, s, target logit); stats start as zeros, m = 0 with s = 0 is harmless.</summary>
    private static void FoldKernel(Index1D row, ArrayView<float> logits, ArrayView<float> stats, ArrayView<int> targets, CrossEntropyChunkArgs a)
    {
        float m = stats[row * 3], sum = stats[row * 3 + 1];
        if (a.First == 0) m = float.NegativeInfinity;
        float newMax = m;
        for (int c = 0; c < a.Columns; c++) newMax = XMath.Max(newMax, logits[row * a.Columns + c]);
        float chunkSum = 0f;
        for (int c = 0; c < a.Columns; c++) chunkSum += XMath.Exp(logits[row * a.Columns + c] - newMax);
        stats[row * 3] = newMax;
        stats[row * 3 + 1] = (a.First == 0 ? 0f : sum * XMath.Exp(m - newMax)) + chunkSum;
        int target = targets[row] - a.First;
        if (target >= 0 && target < a.Columns) stats[row * 3 + 2] = logits[row * a.Columns + target];
    }

    /// <summary>One thread per logit: G = scale · (e^(x − L) − [column is the target]), zero for ignored rows.</summary>
    private static void GradientKernel(Index1D index, ArrayView<float> logits, ArrayView<float> stats, ArrayView<int> targets, CrossEntropyChunkArgs a)
    {
        int row = index / a.Columns, column = index % a.Columns;
        int target = targets[row];
        if (target == IgnoreIndex) { logits[index] = 0f; return; }
        float logSumExp = stats[row * 3] + XMath.Log(stats[row * 3 + 1]);
        float g = XMath.Exp(logits[index] - logSumExp);
        if (target - a.First == column) g -= 1f;
        logits[index] = g * a.Scale;
    }
}
