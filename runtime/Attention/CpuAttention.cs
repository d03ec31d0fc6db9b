using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
            int start = cu[segmentOf[i]], end = cu[segmentOf[i] + 1], count = end - start;
            for (int j = start; j < end; j++)
                buffers.Rows[j - start] = (j * rowStride + h * headDim);
            var scores = buffers.Scores.AsSpan(0, count);
            Scores(qa, qo + i * rowStride + h * headDim, ka, ko, buffers.Rows, count, headDim, scale, scores);
            Softmax(scores);
            WeightedSums(buffers.Scores, maxLength, count, 1, buffers.Rows, va, vo, oa, oo + i * rowStride + h * headDim, headDim);
            return buffers;
        }, _ => { });
    }

    /// <summary>
    /// Causal attention with grouped KV heads, a key padding / segment-id mask (<see cref="CausalVisibility"/>) and an
    /// optional KV cache (the language model). A query that sees no key (a left-padding position) gets the mean of V over all key positions of its batch row,
    /// as transformers' eager attention does (see <see cref="ComputeContext.AttentionCausal"/>).
    /// </summary>
    /// <remarks>
    /// One work item is a (row, query), all KV heads (or a (row, query, KV head) when there are few rows and queries):
    /// the query heads that share a KV head read each visible key and value once, with the visibility test done once
    /// per key for all heads, scores of eight keys at a time and one pass over the values for the whole group. A decode step of many sequences (continuous batching) is mostly this
    /// per-key work (each sequence reads its own cache), so its cost per key is what batching cannot amortise.
    /// </remarks>
    public static void Causal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        CausalAttentionArgs args)
    {
        AttentionChecks.Causal(q, k, v, output, mask, args);
        if (k.IsBf16 || v.IsBf16)
        {
            CausalBf16(q, k, v, output, mask, args);
            return;
        }
        float[] keep = mask.HostArray;    // int32 elements stored in the float array (bit patterns)
        float[] qa = q.HostArray, ka = k.HostArray, va = v.HostArray, oa = output.HostArray;
        int mo = mask.Offset, qo = q.Offset, ko = k.Offset, vo = v.Offset, oo = output.Offset;
        int heads = args.Heads, kvHeads = args.KvHeads, headDim = args.HeadDim, queries = args.QueryLength;
        int capacity = args.Capacity, group = heads / kvHeads, first = args.KeyLength - args.QueryLength, keyLength = args.KeyLength;
        float scale = args.Scale;

        // A work item is one query of one row, all KV heads (each key row read whole, by one core), unless that leaves
        // too few items to share out: then one per KV head as well (a single long sequence).
        int perKvHead = (long)args.Batch * queries >= 4L * Environment.ProcessorCount ? 1 : kvHeads;
        void Item(int item, float[] scores, int[] rows)
        {
            int part = item % perKvHead, i = item / perKvHead % queries, b = item / (perKvHead * queries);
            int kvFrom = perKvHead == 1 ? 0 : part, kvTo = perKvHead == 1 ? kvHeads : part + 1;
            int maskRow = mo + b * capacity;
            int own = BitConverter.SingleToInt32Bits(keep[maskRow + first + i]), count = 0;
            // rows[] holds the visible key columns' offsets for KV head 0; head kvh's rows are kvh·headDim further.
            for (int j = 0; j <= first + i; j++)
                if (CausalVisibility.Visible(BitConverter.SingleToInt32Bits(keep[maskRow + j]), own))
                    rows[count++] = (b * capacity + j) * kvHeads * headDim;
            bool none = count == 0;
            if (none)
            {
                // Fully masked row: every score is float32-min in transformers, so the softmax is uniform.
                for (int j = 0; j < keyLength; j++)
                    rows[j] = (b * capacity + j) * kvHeads * headDim;
                count = keyLength;
            }
            for (int kvh = kvFrom; kvh < kvTo; kvh++)
            {
                int h0 = kvh * group, kvAt = kvh * headDim;
                int queryAt = qo + ((b * queries + i) * heads + h0) * headDim;    // the group's heads are adjacent
                for (int g = 0; g < group; g++)
                {
                    var s = scores.AsSpan(g * keyLength, count);
                    if (none) s.Clear();
                    else Scores(qa, queryAt + g * headDim, ka, ko + kvAt, rows, count, headDim, scale, s);
                    Softmax(s);
                }
                WeightedSums(scores, keyLength, count, group, rows, va, vo + kvAt, oa, oo + ((b * queries + i) * heads + h0) * headDim, headDim);
            }
        }

        int items = args.Batch * queries * perKvHead;
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

    /// <summary>
    /// <see cref="Causal"/> over a bf16 KV cache (<see cref="KvCache.IsBf16"/>): each key and value row is widened
    /// exactly as it is read; scores, the softmax and the weighted sum stay f32, as in the f32 path.
    /// </summary>
    private static void CausalBf16(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        CausalAttentionArgs args)
    {
        if (!k.IsBf16 || !v.IsBf16)
            throw new ArgumentException($"attention keys and values must have one dtype, got {k} and {v}");
        int[] keep = mask.IntSpan.ToArray();
        float[] qa = q.HostArray, oa = output.HostArray;
        ReadOnlyMemory<ushort> kb = k.Bf16Memory, vb = v.Bf16Memory;
        int qo = q.Offset, oo = output.Offset;
        int heads = args.Heads, kvHeads = args.KvHeads, headDim = args.HeadDim, queries = args.QueryLength;
        int capacity = args.Capacity, group = heads / kvHeads, first = args.KeyLength - args.QueryLength;
        float scale = args.Scale;

        Parallel.For(0, args.Batch * queries * heads,
            () => (Scores: new float[args.KeyLength], Rows: new int[args.KeyLength], Row: new float[headDim]), (item, _, buffers) =>
        {
            int h = item % heads, i = item / heads % queries, b = item / (heads * queries);
            int kvh = h / group;
            ReadOnlySpan<float> query = qa.AsSpan(qo + ((b * queries + i) * heads + h) * headDim, headDim);
            ReadOnlySpan<ushort> keys = kb.Span, values = vb.Span;
            int count = 0, own = keep[b * capacity + first + i];
            for (int j = 0; j <= first + i; j++)
            {
                if (!CausalVisibility.Visible(keep[b * capacity + j], own)) continue;
                int keyAt = ((b * capacity + j) * kvHeads + kvh) * headDim;
                Widen(keys.Slice(keyAt, headDim), buffers.Row);
                buffers.Scores[count] = TensorPrimitives.Dot(query, buffers.Row) * scale;
                buffers.Rows[count++] = keyAt;
            }
            if (count == 0)
            {
                for (int j = 0; j < args.KeyLength; j++)
                {
                    buffers.Scores[j] = 0f;
                    buffers.Rows[j] = ((b * capacity + j) * kvHeads + kvh) * headDim;
                }
                count = args.KeyLength;
            }
            Span<float> o = oa.AsSpan(oo + ((b * queries + i) * heads + h) * headDim, headDim);
            Span<float> scores = buffers.Scores.AsSpan(0, count);
            float max = TensorPrimitives.Max(scores);
            TensorPrimitives.Subtract(scores, max, scores);
            TensorPrimitives.Exp(scores, scores);
            float inverseSum = 1f / TensorPrimitives.Sum(scores);
            o.Clear();
            for (int j = 0; j < count; j++)
            {
                Widen(values.Slice(buffers.Rows[j], headDim), buffers.Row);
                TensorPrimitives.MultiplyAdd(buffers.Row, scores[j] * inverseSum, o, o);
            }
            return buffers;
        }, _ => { });
    }

    private static void Widen(ReadOnlySpan<ushort> bits, Span<float> row)
    {
        for (int i = 0; i < bits.Length; i++) row[i] = Bf16Kernels.Widen(bits[i]);
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

    /// <summary>
    /// scores[j] = scale · q · keys[keyOffset + rows[j] ..] for the j &lt; count visible keys. With AVX and a head
    /// dimension that is a multiple of 8 (every Qwen2-VL size), eight keys at a time: each query vector is loaded once
    /// for the eight, and their eight partial sums are reduced together by a tree of horizontal adds instead of one
    /// full horizontal sum per key (in a decode step of many sequences this per-key work is most of attention).
    /// </summary>
    private static void Scores(float[] qa, int queryAt, float[] ka, int keyOffset, int[] rows, int count, int headDim, float scale, Span<float> scores)
    {
        int j = 0;
        if (Avx.IsSupported && Fma.IsSupported && headDim % 8 == 0)
        {
            if ((uint)queryAt > qa.Length - (uint)headDim) throw new IndexOutOfRangeException();
            ref float qr = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(qa), queryAt);
            ref float kr = ref MemoryMarshal.GetArrayDataReference(ka);
            ref float sr = ref MemoryMarshal.GetReference(scores);
            var scaleV = Vector256.Create(scale);
            for (; j + 8 <= count; j += 8)
            {
                ref float k0 = ref Row(ka, ref kr, keyOffset + rows[j], headDim), k1 = ref Row(ka, ref kr, keyOffset + rows[j + 1], headDim),
                    k2 = ref Row(ka, ref kr, keyOffset + rows[j + 2], headDim), k3 = ref Row(ka, ref kr, keyOffset + rows[j + 3], headDim),
                    k4 = ref Row(ka, ref kr, keyOffset + rows[j + 4], headDim), k5 = ref Row(ka, ref kr, keyOffset + rows[j + 5], headDim),
                    k6 = ref Row(ka, ref kr, keyOffset + rows[j + 6], headDim), k7 = ref Row(ka, ref kr, keyOffset + rows[j + 7], headDim);
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                for (nuint d = 0; d < (nuint)headDim; d += 8)
                {
                    var q = Vector256.LoadUnsafe(ref qr, d);
                    a0 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k0, d), a0);
                    a1 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k1, d), a1);
                    a2 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k2, d), a2);
                    a3 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k3, d), a3);
                    a4 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k4, d), a4);
                    a5 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k5, d), a5);
                    a6 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k6, d), a6);
                    a7 = Fma.MultiplyAdd(q, Vector256.LoadUnsafe(ref k7, d), a7);
                }
                // hadd pairs lanes within each 128-bit half: after two levels, lane l of the lower half holds key l's sum
                // over its lower half (keys 0–3 from h0123, 4–7 from h4567), the upper half the same over its upper half.
                var h0123 = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3));
                var h4567 = Avx.HorizontalAdd(Avx.HorizontalAdd(a4, a5), Avx.HorizontalAdd(a6, a7));
                var sums = Avx.Add(Avx.Permute2x128(h0123, h4567, 0x20), Avx.Permute2x128(h0123, h4567, 0x31));
                Avx.Multiply(sums, scaleV).StoreUnsafe(ref sr, (nuint)j);
            }
        }
        for (; j < count; j++)
            scores[j] = Dot(qa, queryAt, ka, keyOffset + rows[j], headDim) * scale;
    }

    /// <summary>A bounds-checked reference to the row of n floats at <paramref name="at"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref float Row(float[] array, ref float start, int at, int n)
    {
        if ((uint)at > array.Length - (uint)n) throw new IndexOutOfRangeException();
        return ref Unsafe.Add(ref start, at);
    }

    /// <summary>In place: the max-subtracted softmax of the scores.</summary>
    private static void Softmax(Span<float> scores)
    {
        float max = TensorPrimitives.Max(scores);
        TensorPrimitives.Subtract(scores, max, scores);
        TensorPrimitives.Exp(scores, scores);
        TensorPrimitives.Multiply(scores, 1f / TensorPrimitives.Sum(scores), scores);
    }

    /// <summary>
    /// For each of the <paramref name="group"/> query heads sharing one KV head: o_g = Σⱼ p_g[j] · values[rows[j] ..],
    /// p_g the softmax weights in scores[g·stride ..]; each value row is read once for the whole group.
    /// </summary>
    private static void WeightedSums(float[] scores, int stride, int count, int group, int[] rows, float[] values, int valueOffset,
        float[] output, int outAt, int headDim)
    {
        if ((uint)outAt > output.Length - (uint)(group * headDim)) throw new IndexOutOfRangeException();
        output.AsSpan(outAt, group * headDim).Clear();
        ref float or = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(output), outAt);
        ref float vr = ref MemoryMarshal.GetArrayDataReference(values);
        int width = Vector<float>.Count, vectorEnd = headDim - headDim % width;
        for (int j = 0; j < count; j++)
        {
            ref float row = ref Row(values, ref vr, valueOffset + rows[j], headDim);
            for (int g = 0; g < group; g++)
            {
                float p = scores[g * stride + j];
                var pv = new Vector<float>(p);
                ref float o = ref Unsafe.Add(ref or, g * headDim);
                for (int d = 0; d < vectorEnd; d += width)
                    Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref row, (nuint)d), pv, Vector.LoadUnsafe(ref o, (nuint)d)).StoreUnsafe(ref o, (nuint)d);
                for (int d = vectorEnd; d < headDim; d++) Unsafe.Add(ref o, d) += Unsafe.Add(ref row, d) * p;
            }
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
