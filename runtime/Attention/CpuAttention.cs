using System.Numerics.Tensors;

namespace Qwen2VL.Runtime;

/// <summary>
/// Scaled-dot-product attention on the CPU, one (query, head) pair per work item: scores against the
/// visible keys, max-subtracted softmax in float32, then the probability-weighted sum of values.
/// </summary>
public static class CpuAttention
{
    /// <summary>Bidirectional attention within segments (the vision tower's per-image / per-frame blocks).</summary>
    public static void Segments(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor cuSeqlens,
        int n, int heads, int headDim, float scale)
    {
        AttentionChecks.Segments(q, k, v, output, cuSeqlens, n, heads, headDim);
        int[] cu = cuSeqlens.IntSpan.ToArray();
        int[] segmentOf = AttentionChecks.SegmentIndex(cu, n);
        int maxLength = 0;
        for (int s = 0; s + 1 < cu.Length; s++) maxLength = Math.Max(maxLength, cu[s + 1] - cu[s]);
        float[] qa = q.HostArray, ka = k.HostArray, va = v.HostArray, oa = output.HostArray;
        int qo = q.Offset, ko = k.Offset, vo = v.Offset, oo = output.Offset;
        int rowStride = heads * headDim;

        Parallel.For(0, n * heads, () => (Scores: new float[maxLength], Rows: new int[maxLength]), (item, _, buffers) =>
        {
            int i = item / heads, h = item % heads;
            int start = cu[segmentOf[i]], end = cu[segmentOf[i] + 1];
            ReadOnlySpan<float> query = qa.AsSpan(qo + i * rowStride + h * headDim, headDim);
            for (int j = start; j < end; j++)
            {
                int keyAt = j * rowStride + h * headDim;
                buffers.Scores[j - start] = TensorPrimitives.Dot(query, ka.AsSpan(ko + keyAt, headDim)) * scale;
                buffers.Rows[j - start] = vo + keyAt;
            }
            Span<float> o = oa.AsSpan(oo + i * rowStride + h * headDim, headDim);
            WeightedSum(buffers.Scores.AsSpan(0, end - start), buffers.Rows, va, o);
            return buffers;
        }, _ => { });
    }

    /// <summary>
    /// Causal attention with grouped KV heads and a key padding mask (the language model). A query that sees no
    /// key (a left-padding position) gets the mean of V over all <paramref name="seq"/> positions of its batch
    /// row, as transformers' eager attention does (see <see cref="ComputeContext.AttentionCausal"/>).
    /// </summary>
    public static void Causal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        int batch, int seq, int heads, int kvHeads, int headDim, float scale)
    {
        AttentionChecks.Causal(q, k, v, output, mask, batch, seq, heads, kvHeads, headDim);
        int[] keep = mask.IntSpan.ToArray();
        float[] qa = q.HostArray, ka = k.HostArray, va = v.HostArray, oa = output.HostArray;
        int qo = q.Offset, ko = k.Offset, vo = v.Offset, oo = output.Offset;
        int group = heads / kvHeads;

        Parallel.For(0, batch * seq * heads, () => (Scores: new float[seq], Rows: new int[seq]), (item, _, buffers) =>
        {
            int h = item % heads, i = item / heads % seq, b = item / (heads * seq);
            int kvh = h / group;
            ReadOnlySpan<float> query = qa.AsSpan(qo + ((b * seq + i) * heads + h) * headDim, headDim);
            int count = 0;
            for (int j = 0; j <= i; j++)
            {
                if (keep[b * seq + j] == 0) continue;
                int keyAt = ((b * seq + j) * kvHeads + kvh) * headDim;
                buffers.Scores[count] = TensorPrimitives.Dot(query, ka.AsSpan(ko + keyAt, headDim)) * scale;
                buffers.Rows[count++] = vo + keyAt;
            }
            Span<float> o = oa.AsSpan(oo + ((b * seq + i) * heads + h) * headDim, headDim);
            if (count == 0)
            {
                // Fully masked row: every score is float32-min in transformers, so the softmax is uniform.
                for (int j = 0; j < seq; j++)
                {
                    buffers.Scores[j] = 0f;
                    buffers.Rows[j] = vo + ((b * seq + j) * kvHeads + kvh) * headDim;
                }
                count = seq;
            }
            WeightedSum(buffers.Scores.AsSpan(0, count), buffers.Rows, va, o);
            return buffers;
        }, _ => { });
    }

    /// <summary>o = Σⱼ softmax(s)ⱼ · values[rows[j] ..]; zeros when there are no scores.</summary>
    private static void WeightedSum(Span<float> scores, int[] rows, float[] values, Span<float> o)
    {
        o.Clear();
        if (scores.IsEmpty) return;
        float max = TensorPrimitives.Max(scores);
        TensorPrimitives.Subtract(scores, max, scores);
        TensorPrimitives.Exp(scores, scores);
        float inverseSum = 1f / TensorPrimitives.Sum(scores);
        for (int j = 0; j < scores.Length; j++)
            TensorPrimitives.MultiplyAdd(values.AsSpan(rows[j], o.Length), scores[j] * inverseSum, o, o);
    }
}

internal static class AttentionChecks
{
    public static void Segments(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor cuSeqlens,
        int n, int heads, int headDim)
    {
        long size = (long)n * heads * headDim;
        Float(q, size, "q"); Float(k, size, "k"); Float(v, size, "v"); Float(output, size, "output");
        if (!cuSeqlens.IsInt || cuSeqlens.Length < 1)
            throw new ArgumentException($"cuSeqlens must be a non-empty int32 tensor, got {cuSeqlens}");
    }

    public static void Causal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        int batch, int seq, int heads, int kvHeads, int headDim)
    {
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new ArgumentException($"heads ({heads}) must be a multiple of kvHeads ({kvHeads})");
        long qSize = (long)batch * seq * heads * headDim, kvSize = (long)batch * seq * kvHeads * headDim;
        Float(q, qSize, "q"); Float(k, kvSize, "k"); Float(v, kvSize, "v"); Float(output, qSize, "output");
        if (!mask.IsInt || mask.Length != batch * seq)
            throw new ArgumentException($"mask must be int32 [batch={batch}, seq={seq}], got {mask}");
    }

    /// <summary>For each token, the segment it belongs to; checks cuSeqlens is 0 = c₀ ≤ c₁ ≤ … ≤ c_last = n.</summary>
    public static int[] SegmentIndex(int[] cu, int n)
    {
        if (cu[0] != 0 || cu[^1] != n)
            throw new ArgumentException($"cuSeqlens must start at 0 and end at n = {n}, got [{string.Join(", ", cu)}]");
        var segmentOf = new int[n];
        for (int s = 0; s + 1 < cu.Length; s++)
        {
            if (cu[s + 1] < cu[s])
                throw new ArgumentException($"cuSeqlens must be non-decreasing, got [{string.Join(", ", cu)}]");
            for (int i = cu[s]; i < cu[s + 1]; i++) segmentOf[i] = s;
        }
        return segmentOf;
    }

    private static void Float(DeviceTensor t, long size, string name)
    {
        if (t.IsInt || t.Length != size)
            throw new ArgumentException($"attention {name} must be float32 with {size} elements, got {t}");
    }
}
