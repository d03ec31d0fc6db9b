using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

/// <summary>Sizes of a segment-attention launch (one struct keeps the kernel signature short).</summary>
public struct SegmentAttentionArgs
{
    public int N, Heads, HeadDim, Segments;
    public float Scale;
}

/// <summary>
/// Sizes of a causal-attention launch. The queries are the last <see cref="QueryLength"/> of
/// <see cref="KeyLength"/> positions; k, v and the mask have room for <see cref="Capacity"/> positions.
/// </summary>
public struct CausalAttentionArgs
{
    public int Batch, QueryLength, KeyLength, Capacity, Heads, KvHeads, HeadDim;
    public float Scale;
}

/// <summary>
/// ILGPU attention, correctness first: one thread per (query, head) streams over the visible keys with
/// an online softmax (running max m, running sum l, accumulator rescaled by e^(m_old − m_new) whenever the
/// max grows), so scores are never stored. The accumulator lives in per-thread local memory.
/// </summary>
internal static class AttentionKernels
{
    public const int MaxHeadDim = 128;

    public static void Segments(Index1D item, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> output, ArrayView<int> cuSeqlens, SegmentAttentionArgs args)
    {
        // Consecutive threads take consecutive queries of one head, so a warp reads the same key and
        // value rows at the same time (one broadcast load instead of 32 scattered ones).
        int h = item / args.N, i = item % args.N;
        // Binary search for the segment s with cu[s] ≤ i < cu[s + 1].
        int lo = 0, hi = args.Segments - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (cuSeqlens[mid] <= i) lo = mid; else hi = mid - 1;
        }
        int start = cuSeqlens[lo], end = cuSeqlens[lo + 1];
        int stride = args.Heads * args.HeadDim;
        int queryAt = i * stride + h * args.HeadDim;

        // Local arrays are allocated here in the kernel body: a view of a callee's local memory would dangle.
        ArrayView<float> query = LocalMemory.Allocate1D<float>(MaxHeadDim);
        LoadQuery(q, queryAt, args.HeadDim, query);
        ArrayView<float> acc = LocalMemory.Allocate1D<float>(MaxHeadDim);
        for (int d = 0; d < args.HeadDim; d++) acc[d] = 0f;
        float m = float.NegativeInfinity, l = 0f;
        for (int j = start; j < end; j++)
        {
            int keyAt = j * stride + h * args.HeadDim;
            float s = 0f;
            for (int d = 0; d < args.HeadDim; d++) s += query[d] * k[keyAt + d];
            Accumulate(s * args.Scale, v, keyAt, args.HeadDim, acc, ref m, ref l);
        }
        Store(output, queryAt, args.HeadDim, acc, l);
    }

    public static void Causal(Index1D item, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> output, ArrayView<int> mask, CausalAttentionArgs args)
    {
        // item = (b · heads + h) · queryLength + i: a warp shares (b, h) and walks the same keys.
        int i = item % args.QueryLength, h = item / args.QueryLength % args.Heads, b = item / (args.QueryLength * args.Heads);
        int kvh = h / (args.Heads / args.KvHeads);
        int position = args.KeyLength - args.QueryLength + i; // absolute position of this query
        int queryAt = ((b * args.QueryLength + i) * args.Heads + h) * args.HeadDim;

        // Local arrays are allocated here in the kernel body: a view of a callee's local memory would dangle.
        ArrayView<float> query = LocalMemory.Allocate1D<float>(MaxHeadDim);
        LoadQuery(q, queryAt, args.HeadDim, query);
        ArrayView<float> acc = LocalMemory.Allocate1D<float>(MaxHeadDim);
        for (int d = 0; d < args.HeadDim; d++) acc[d] = 0f;
        float m = float.NegativeInfinity, l = 0f;
        int own = mask[b * args.Capacity + position]; // 0 = padding, else the query's segment id (CausalVisibility)
        for (int j = 0; j <= position; j++)
        {
            int maskJ = mask[b * args.Capacity + j];
            if (maskJ == 0 || (own != 0 && maskJ != own)) continue;
            int keyAt = ((b * args.Capacity + j) * args.KvHeads + kvh) * args.HeadDim;
            float s = 0f;
            for (int d = 0; d < args.HeadDim; d++) s += query[d] * k[keyAt + d];
            Accumulate(s * args.Scale, v, keyAt, args.HeadDim, acc, ref m, ref l);
        }
        if (l == 0f)
        {
            // No visible key (left padding): transformers' eager softmax over all-float32-min scores is uniform
            // over every key of the row, so the output is the mean of v over the whole row (see AttentionCausal).
            for (int j = 0; j < args.KeyLength; j++)
            {
                int valueAt = ((b * args.Capacity + j) * args.KvHeads + kvh) * args.HeadDim;
                for (int d = 0; d < args.HeadDim; d++) acc[d] += v[valueAt + d];
            }
            l = args.KeyLength;
        }
        Store(output, queryAt, args.HeadDim, acc, l);
    }

    /// <summary>The thread's query row, copied once into local memory instead of re-read for every key.</summary>
    private static void LoadQuery(ArrayView<float> q, int at, int headDim, ArrayView<float> query)
    {
        for (int d = 0; d < headDim; d++) query[d] = q[at + d];
    }

    private static void Accumulate(float s, ArrayView<float> v, int valueAt, int headDim, ArrayView<float> acc, ref float m, ref float l)
    {
        float newMax = XMath.Max(m, s);
        float correction = XMath.Exp(m - newMax); // 0 on the first key (m = −∞)
        float p = XMath.Exp(s - newMax);
        l = l * correction + p;
        for (int d = 0; d < headDim; d++) acc[d] = acc[d] * correction + p * v[valueAt + d];
        m = newMax;
    }

    private static void Store(ArrayView<float> output, int at, int headDim, ArrayView<float> acc, float l)
    {
        float inverse = l > 0f ? 1f / l : 0f; // guard only: every query here sees at least one key
        for (int d = 0; d < headDim; d++) output[at + d] = acc[d] * inverse;
    }
}
