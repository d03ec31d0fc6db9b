using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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
    /// Causal attention with grouped KV heads, a key padding / segment-id mask (<see cref="CausalVisibility"/>) and an
    /// optional KV cache (the language model). A query that sees no key (a left-padding position) gets the mean of V over all key positions of its batch row,
    /// as transformers' eager attention does (see <see cref="ComputeContext.AttentionCausal"/>).
    /// </summary>
    /// <remarks>
    /// One work item is a (row, query, KV head): the query heads that share that KV head read each visible key and
    /// value once, with the visibility test done once per key, and the dot products and the weighted sum are inline
    /// vector loops over the head dimension. A decode step of many sequences (continuous batching) is mostly this
    /// per-key work (each sequence reads its own cache), so its cost per key is what batching cannot amortise.
    /// </remarks>
    public static void Causal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        CausalAttentionArgs args)
    {
        AttentionChecks.Causal(q, k, v, output, mask, args);
        float[] keep = mask.HostArray;    // int32 elements stored in the float array (bit patterns)
        float[] qa = q.HostArray, ka = k.HostArray, va = v.HostArray, oa = output.HostArray;
        int mo = mask.Offset, qo = q.Offset, ko = k.Offset, vo = v.Offset, oo = output.Offset;
        int heads = args.Heads, kvHeads = args.KvHeads, headDim = args.HeadDim, queries = args.QueryLength;
        int capacity = args.Capacity, group = heads / kvHeads, first = args.KeyLength - args.QueryLength, keyLength = args.KeyLength;
        float scale = args.Scale;

        void Item(int item, float[] scores, int[] rows)
        {
            int kvh = item % kvHeads, i = item / kvHeads % queries, b = item / (kvHeads * queries);
            int h0 = kvh * group;
            int queryAt = qo + ((b * queries + i) * heads + h0) * headDim;    // the group's heads are adjacent
            int maskRow = mo + b * capacity;
            int own = BitConverter.SingleToInt32Bits(keep[maskRow + first + i]), count = 0;
            for (int j = 0; j <= first + i; j++)
            {
                if (!CausalVisibility.Visible(BitConverter.SingleToInt32Bits(keep[maskRow + j]), own)) continue;
                int keyAt = ((b * capacity + j) * kvHeads + kvh) * headDim;
                for (int g = 0; g < group; g++)
                    scores[g * keyLength + count] = Dot(qa, queryAt + g * headDim, ka, ko + keyAt, headDim) * scale;
                rows[count++] = vo + keyAt;
            }
            int outAt = oo + ((b * queries + i) * heads + h0) * headDim;
            if (count == 0)
            {
                // Fully masked row: every score is float32-min in transformers, so the softmax is uniform.
                for (int j = 0; j < keyLength; j++)
                {
                    for (int g = 0; g < group; g++) scores[g * keyLength + j] = 0f;
                    rows[j] = vo + ((b * capacity + j) * kvHeads + kvh) * headDim;
                }
                count = keyLength;
            }
            for (int g = 0; g < group; g++)
                WeightedSum(scores.AsSpan(g * keyLength, count), rows, va, oa.AsSpan(outAt + g * headDim, headDim));
        }

        int items = args.Batch * queries * kvHeads;
        if (items == 1 || (long)items * keyLength * heads * headDim < 1 << 16)
        {
            // Too little work to pay for the thread-pool hand-off.
            var scores = new float[group * keyLength];
            var rows = new int[keyLength];
            for (int item = 0; item < items; item++) Item(item, scores, rows);
            return;
        }
        Parallel.For(0, items, () => (Scores: new float[group * keyLength], Rows: new int[keyLength]), (item, _, buffers) =>
        {
            Item(item, buffers.Scores, buffers.Rows);
            return buffers;
        }, _ => { });
    }

    /// <summary>Σ x[xAt + d] · y[yAt + d] over d &lt; n, with vectors (n is a head dimension: small, usually a multiple of 8).</summary>
    private static float Dot(float[] x, int xAt, float[] y, int yAt, int n)
    {
        ref float xr = ref MemoryMarshal.GetArrayDataReference(x), yr = ref MemoryMarshal.GetArrayDataReference(y);
        if ((uint)xAt > x.Length - (uint)n || (uint)yAt > y.Length - (uint)n) throw new IndexOutOfRangeException();
        xr = ref Unsafe.Add(ref xr, xAt);
        yr = ref Unsafe.Add(ref yr, yAt);
        int width = Vector<float>.Count, d = 0;
        var sum = Vector<float>.Zero;
        for (; d <= n - width; d += width)
            sum = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref xr, (nuint)d), Vector.LoadUnsafe(ref yr, (nuint)d), sum);
        float total = Vector.Sum(sum);
        for (; d < n; d++) total += Unsafe.Add(ref xr, d) * Unsafe.Add(ref yr, d);
        return total;
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
        int n = o.Length, width = Vector<float>.Count;
        ref float or = ref MemoryMarshal.GetReference(o), vr = ref MemoryMarshal.GetArrayDataReference(values);
        for (int j = 0; j < scores.Length; j++)
        {
            int at = rows[j];
            if ((uint)at > values.Length - (uint)n) throw new IndexOutOfRangeException();
            ref float row = ref Unsafe.Add(ref vr, at);
            float p = scores[j] * inverseSum;
            var pv = new Vector<float>(p);
            int d = 0;
            for (; d <= n - width; d += width)
                Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref row, (nuint)d), pv, Vector.LoadUnsafe(ref or, (nuint)d)).StoreUnsafe(ref or, (nuint)d);
            for (; d < n; d++) Unsafe.Add(ref or, d) += Unsafe.Add(ref row, d) * p;
        }
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
        CausalAttentionArgs a)
    {
        if (a.KvHeads <= 0 || a.Heads % a.KvHeads != 0)
            throw new ArgumentException($"heads ({a.Heads}) must be a multiple of kvHeads ({a.KvHeads})");
        if (a.QueryLength < 0 || a.QueryLength > a.KeyLength || a.KeyLength > a.Capacity)
            throw new ArgumentException($"need 0 ≤ queryLength ({a.QueryLength}) ≤ keyLength ({a.KeyLength}) ≤ capacity ({a.Capacity})");
        long qSize = (long)a.Batch * a.QueryLength * a.Heads * a.HeadDim, kvSize = (long)a.Batch * a.Capacity * a.KvHeads * a.HeadDim;
        Float(q, qSize, "q"); Float(k, kvSize, "k"); Float(v, kvSize, "v"); Float(output, qSize, "output");
        if (!mask.IsInt || mask.Length != a.Batch * a.Capacity)
            throw new ArgumentException($"mask must be int32 [batch={a.Batch}, capacity={a.Capacity}], got {mask}");
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
