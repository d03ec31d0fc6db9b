using ILGPU;
using ILGPU.Algorithms;

namespace Qwen2VL.Runtime;

/// <summary>
/// ILGPU attention backward, the same two passes as <see cref="CpuAttentionBackward"/>, one thread per item:
/// the row pass (per query, head) streams over the visible keys twice, first with an online softmax that also
/// carries u = Σ e^(S_j − m)·dP_j (rescaled with the sum) so D = u / l, then computing dS_j and dQ; it stores
/// per row (L, D, uniform flag). The key pass (per key, kv head) walks the queries that see the key and sums dK
/// and dV in local memory, so no two threads write the same element (no atomics).
/// Stats layout: [rows, 3] with row = (b·heads + h)·seq + i (causal) or h·n + i (segments).
/// </summary>
internal static class AttentionBackwardKernels
{
    private const int MaxHeadDim = AttentionKernels.MaxHeadDim;

    public static void CausalRows(Index1D item, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> dOut,
        ArrayView<float> dQ, ArrayView<float> stats, ArrayView<int> mask, CausalAttentionArgs args)
    {
        int seq = args.KeyLength, hd = args.HeadDim;
        int i = item % seq, h = item / seq % args.Heads, b = item / (seq * args.Heads);
        int kvh = h / (args.Heads / args.KvHeads);
        int queryAt = ((b * seq + i) * args.Heads + h) * hd;
        ArrayView<float> query = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> grad = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> acc = LocalMemory.Allocate1D<float>(MaxHeadDim);
        for (int d = 0; d < hd; d++) { query[d] = q[queryAt + d]; grad[d] = dOut[queryAt + d]; acc[d] = 0f; }
        int own = mask[b * seq + i];

        float m = float.NegativeInfinity, l = 0f, u = 0f;
        for (int j = 0; j <= i; j++)
        {
            int maskJ = mask[b * seq + j];
            if (maskJ == 0 || (own != 0 && maskJ != own)) continue;
            int keyAt = ((b * seq + j) * args.KvHeads + kvh) * hd;
            float s = Dot(query, k, keyAt, hd) * args.Scale, dp = Dot(grad, v, keyAt, hd);
            float newMax = XMath.Max(m, s), correction = XMath.Exp(m - newMax), p = XMath.Exp(s - newMax);
            l = l * correction + p;
            u = u * correction + p * dp;
            m = newMax;
        }
        bool uniform = l == 0f;
        float inverseSeq = 1f / seq;
        if (uniform)
        {
            // No visible key: P = 1/seq over every key of the row (transformers' all-float32-min row).
            for (int j = 0; j < seq; j++) u += Dot(grad, v, ((b * seq + j) * args.KvHeads + kvh) * hd, hd);
            u *= inverseSeq;
            l = 1f;
            m = 0f;
        }
        float delta = u / l, logSumExp = m + XMath.Log(l);

        int last = uniform ? seq - 1 : i;
        for (int j = 0; j <= last; j++)
        {
            int maskJ = mask[b * seq + j];
            if (!uniform && (maskJ == 0 || (own != 0 && maskJ != own))) continue;
            int keyAt = ((b * seq + j) * args.KvHeads + kvh) * hd;
            float p = uniform ? inverseSeq : XMath.Exp(Dot(query, k, keyAt, hd) * args.Scale - logSumExp);
            float ds = p * (Dot(grad, v, keyAt, hd) - delta);
            for (int d = 0; d < hd; d++) acc[d] += ds * k[keyAt + d];
        }
        for (int d = 0; d < hd; d++) dQ[queryAt + d] = acc[d] * args.Scale;
        stats[item * 3] = logSumExp;
        stats[item * 3 + 1] = delta;
        stats[item * 3 + 2] = uniform ? 1f : 0f;
    }

    public static void CausalKeys(Index1D item, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> dOut,
        ArrayView<float> dK, ArrayView<float> dV, ArrayView<float> stats, ArrayView<int> mask, CausalAttentionArgs args)
    {
        // item = (b·kvHeads + kvh)·seq + j: a warp shares (b, kvh) and walks the same queries.
        int seq = args.KeyLength, hd = args.HeadDim, group = args.Heads / args.KvHeads;
        int j = item % seq, kvh = item / seq % args.KvHeads, b = item / (seq * args.KvHeads);
        int keyAt = ((b * seq + j) * args.KvHeads + kvh) * hd;
        ArrayView<float> key = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> value = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> gk = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> gv = LocalMemory.Allocate1D<float>(MaxHeadDim);
        for (int d = 0; d < hd; d++) { key[d] = k[keyAt + d]; value[d] = v[keyAt + d]; gk[d] = 0f; gv[d] = 0f; }
        int maskJ = mask[b * seq + j];
        float inverseSeq = 1f / seq;
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
            for (int i = 0; i < seq; i++)
            {
                int row = (b * args.Heads + h) * seq + i;
                bool uniform = stats[row * 3 + 2] != 0f;
                int own = mask[b * seq + i];
                if (!uniform && (j > i || maskJ == 0 || (own != 0 && maskJ != own))) continue;
                int queryAt = ((b * seq + i) * args.Heads + h) * hd;
                float p = uniform ? inverseSeq : XMath.Exp(Dot(key, q, queryAt, hd) * args.Scale - stats[row * 3]);
                float ds = p * (Dot(value, dOut, queryAt, hd) - stats[row * 3 + 1]);
                for (int d = 0; d < hd; d++)
                {
                    gk[d] += ds * q[queryAt + d];
                    gv[d] += p * dOut[queryAt + d];
                }
            }
        for (int d = 0; d < hd; d++) { dK[keyAt + d] = gk[d] * args.Scale; dV[keyAt + d] = gv[d]; }
    }

    public static void SegmentRows(Index1D item, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> dOut,
        ArrayView<float> dQ, ArrayView<float> stats, ArrayView<int> cuSeqlens, SegmentAttentionArgs args)
    {
        int h = item / args.N, i = item % args.N, hd = args.HeadDim, stride = args.Heads * hd;
        int segment = FindSegment(cuSeqlens, args.Segments, i);
        int start = cuSeqlens[segment], end = cuSeqlens[segment + 1];
        int queryAt = i * stride + h * hd;
        ArrayView<float> query = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> grad = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> acc = LocalMemory.Allocate1D<float>(MaxHeadDim);
        for (int d = 0; d < hd; d++) { query[d] = q[queryAt + d]; grad[d] = dOut[queryAt + d]; acc[d] = 0f; }
        float m = float.NegativeInfinity, l = 0f, u = 0f;
        for (int j = start; j < end; j++)
        {
            int keyAt = j * stride + h * hd;
            float s = Dot(query, k, keyAt, hd) * args.Scale, dp = Dot(grad, v, keyAt, hd);
            float newMax = XMath.Max(m, s), correction = XMath.Exp(m - newMax), p = XMath.Exp(s - newMax);
            l = l * correction + p;
            u = u * correction + p * dp;
            m = newMax;
        }
        float delta = u / l, logSumExp = m + XMath.Log(l); // l > 0: the query sees itself
        for (int j = start; j < end; j++)
        {
            int keyAt = j * stride + h * hd;
            float p = XMath.Exp(Dot(query, k, keyAt, hd) * args.Scale - logSumExp);
            float ds = p * (Dot(grad, v, keyAt, hd) - delta);
            for (int d = 0; d < hd; d++) acc[d] += ds * k[keyAt + d];
        }
        for (int d = 0; d < hd; d++) dQ[queryAt + d] = acc[d] * args.Scale;
        stats[item * 3] = logSumExp;
        stats[item * 3 + 1] = delta;
    }

    public static void SegmentKeys(Index1D item, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> dOut,
        ArrayView<float> dK, ArrayView<float> dV, ArrayView<float> stats, ArrayView<int> cuSeqlens, SegmentAttentionArgs args)
    {
        int h = item / args.N, j = item % args.N, hd = args.HeadDim, stride = args.Heads * hd;
        int segment = FindSegment(cuSeqlens, args.Segments, j);
        int start = cuSeqlens[segment], end = cuSeqlens[segment + 1];
        int keyAt = j * stride + h * hd;
        ArrayView<float> key = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> value = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> gk = LocalMemory.Allocate1D<float>(MaxHeadDim);
        ArrayView<float> gv = LocalMemory.Allocate1D<float>(MaxHeadDim);
        for (int d = 0; d < hd; d++) { key[d] = k[keyAt + d]; value[d] = v[keyAt + d]; gk[d] = 0f; gv[d] = 0f; }
        for (int i = start; i < end; i++)
        {
            int queryAt = i * stride + h * hd, row = h * args.N + i;
            float p = XMath.Exp(Dot(key, q, queryAt, hd) * args.Scale - stats[row * 3]);
            float ds = p * (Dot(value, dOut, queryAt, hd) - stats[row * 3 + 1]);
            for (int d = 0; d < hd; d++)
            {
                gk[d] += ds * q[queryAt + d];
                gv[d] += p * dOut[queryAt + d];
            }
        }
        for (int d = 0; d < hd; d++) { dK[keyAt + d] = gk[d] * args.Scale; dV[keyAt + d] = gv[d]; }
    }

    /// <summary>The segment s with cu[s] ≤ i &lt; cu[s + 1] (binary search; empty segments are skipped).</summary>
    private static int FindSegment(ArrayView<int> cu, int segments, int i)
    {
        int lo = 0, hi = segments - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (cu[mid] <= i) lo = mid; else hi = mid - 1;
        }
        return lo;
    }

    private static float Dot(ArrayView<float> local, ArrayView<float> global, int at, int length)
    {
        float s = 0f;
        for (int d = 0; d < length; d++) s += local[d] * global[at + d];
        return s;
    }
}
