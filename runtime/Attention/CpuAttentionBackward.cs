using System.Numerics.Tensors;

namespace Qwen2VL.Runtime;

/// <summary>
/// Attention backward on the CPU, recomputing the probabilities from q and k (nothing stored by the forward).
/// With S = scale·q·kᵀ, P = softmax(S), O = P·V and the upstream gradient dO:
/// <code>dP = dO·Vᵀ,  D_i = Σ_j P_ij dP_ij (= dO_i·O_i),  dS = P ⊙ (dP − D),
/// dQ = scale · dS·K,  dK = scale · dSᵀ·Q,  dV = Pᵀ·dO</code>
/// Two passes keep every write private to one work item: pass 1, one item per (query, head), computes dQ and
/// the row's logsumexp L and D; pass 2, one item per (key, kv head), recomputes P_ij = e^(S_ij − L_i) for the
/// queries that see the key and sums dK and dV (over all query heads of a kv group).
/// A causal query with no visible key has uniform P = 1/seq over every key of its row (see
/// <see cref="ComputeContext.AttentionCausalBackward"/>), and its gradient flows through all of them.
/// </summary>
internal static class CpuAttentionBackward
{
    public static void Causal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, DeviceTensor mask, CausalAttentionArgs args)
    {
        int[] keep = mask.IntSpan.ToArray();
        float[] qa = q.HostArray, ka = k.HostArray, va = v.HostArray, oa = dOut.HostArray, dqa = dQ.HostArray, dka = dK.HostArray, dva = dV.HostArray;
        int qo = q.Offset, ko = k.Offset, vo = v.Offset, oo = dOut.Offset, dqo = dQ.Offset, dko = dK.Offset, dvo = dV.Offset;
        int batch = args.Batch, seq = args.KeyLength, heads = args.Heads, kvHeads = args.KvHeads, headDim = args.HeadDim;
        int group = heads / kvHeads;
        float scale = args.Scale;
        var logSumExp = new float[batch * heads * seq];
        var delta = new float[batch * heads * seq];
        var uniform = new bool[batch * heads * seq];

        // Pass 1: item = (b·heads + h)·seq + i.
        Parallel.For(0, batch * heads * seq, () => (Scores: new float[seq], Keys: new int[seq], DP: new float[seq]), (item, _, buf) =>
        {
            int i = item % seq, h = item / seq % heads, b = item / (seq * heads), kvh = h / group;
            int queryAt = ((b * seq + i) * heads + h) * headDim;
            ReadOnlySpan<float> query = qa.AsSpan(qo + queryAt, headDim), gradOut = oa.AsSpan(oo + queryAt, headDim);
            int own = keep[b * seq + i], count = 0;
            for (int j = 0; j <= i; j++)
                if (CausalVisibility.Visible(keep[b * seq + j], own))
                    buf.Keys[count++] = ((b * seq + j) * kvHeads + kvh) * headDim;
            bool flat = count == 0;
            if (flat)
                for (int j = 0; j < seq; j++) buf.Keys[count++] = ((b * seq + j) * kvHeads + kvh) * headDim;
            (logSumExp[item], delta[item]) = RowBackward(query, gradOut, buf.Keys.AsSpan(0, count), ka, ko, va, vo, scale, flat,
                buf.Scores, buf.DP, dqa.AsSpan(dqo + queryAt, headDim));
            uniform[item] = flat;
            return buf;
        }, _ => { });

        // Pass 2: item = (b·seq + j)·kvHeads + kvh.
        Parallel.For(0, batch * seq * kvHeads, item =>
        {
            int kvh = item % kvHeads, j = item / kvHeads % seq, b = item / (kvHeads * seq);
            int keyAt = ((b * seq + j) * kvHeads + kvh) * headDim;
            ReadOnlySpan<float> key = ka.AsSpan(ko + keyAt, headDim), value = va.AsSpan(vo + keyAt, headDim);
            Span<float> gk = dka.AsSpan(dko + keyAt, headDim), gv = dva.AsSpan(dvo + keyAt, headDim);
            gk.Clear();
            gv.Clear();
            int maskJ = keep[b * seq + j];
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int i = 0; i < seq; i++)
                {
                    int row = (b * heads + h) * seq + i;
                    bool flat = uniform[row];
                    if (!flat && (j > i || !CausalVisibility.Visible(maskJ, keep[b * seq + i]))) continue;
                    int queryAt = ((b * seq + i) * heads + h) * headDim;
                    KeyUpdate(qa.AsSpan(qo + queryAt, headDim), oa.AsSpan(oo + queryAt, headDim), key, value, scale,
                        flat ? 1f / seq : float.NaN, logSumExp[row], delta[row], gk, gv);
                }
            TensorPrimitives.Multiply(gk, scale, gk);
        });
    }

    public static void Segments(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, DeviceTensor cuSeqlens, int n, int heads, int headDim, float scale)
    {
        int[] cu = cuSeqlens.IntSpan.ToArray();
        int[] segmentOf = AttentionChecks.SegmentIndex(cu, n);
        int maxLength = 0;
        for (int s = 0; s + 1 < cu.Length; s++) maxLength = Math.Max(maxLength, cu[s + 1] - cu[s]);
        float[] qa = q.HostArray, ka = k.HostArray, va = v.HostArray, oa = dOut.HostArray, dqa = dQ.HostArray, dka = dK.HostArray, dva = dV.HostArray;
        int qo = q.Offset, ko = k.Offset, vo = v.Offset, oo = dOut.Offset, dqo = dQ.Offset, dko = dK.Offset, dvo = dV.Offset;
        int stride = heads * headDim;
        var logSumExp = new float[n * heads];
        var delta = new float[n * heads];

        // Pass 1: item = i·heads + h.
        Parallel.For(0, n * heads, () => (Scores: new float[maxLength], Keys: new int[maxLength], DP: new float[maxLength]), (item, _, buf) =>
        {
            int i = item / heads, h = item % heads;
            int start = cu[segmentOf[i]], end = cu[segmentOf[i] + 1];
            for (int j = start; j < end; j++) buf.Keys[j - start] = j * stride + h * headDim;
            int at = i * stride + h * headDim;
            (logSumExp[item], delta[item]) = RowBackward(qa.AsSpan(qo + at, headDim), oa.AsSpan(oo + at, headDim),
                buf.Keys.AsSpan(0, end - start), ka, ko, va, vo, scale, false, buf.Scores, buf.DP, dqa.AsSpan(dqo + at, headDim));
            return buf;
        }, _ => { });

        // Pass 2: item = j·heads + h; every query of the key's segment sees it.
        Parallel.For(0, n * heads, item =>
        {
            int j = item / heads, h = item % heads;
            int start = cu[segmentOf[j]], end = cu[segmentOf[j] + 1];
            int keyAt = j * stride + h * headDim;
            Span<float> gk = dka.AsSpan(dko + keyAt, headDim), gv = dva.AsSpan(dvo + keyAt, headDim);
            gk.Clear();
            gv.Clear();
            for (int i = start; i < end; i++)
            {
                int at = i * stride + h * headDim;
                KeyUpdate(qa.AsSpan(qo + at, headDim), oa.AsSpan(oo + at, headDim), ka.AsSpan(ko + keyAt, headDim),
                    va.AsSpan(vo + keyAt, headDim), scale, float.NaN, logSumExp[i * heads + h], delta[i * heads + h], gk, gv);
            }
            TensorPrimitives.Multiply(gk, scale, gk);
        });
    }

    /// <summary>
    /// One query row over the keys at <paramref name="keys"/> (element offsets shared by k and v): writes dQ and
    /// returns (L, D). With <paramref name="flat"/> the probabilities are uniform over the keys (fully masked row).
    /// </summary>
    private static (float LogSumExp, float Delta) RowBackward(ReadOnlySpan<float> query, ReadOnlySpan<float> gradOut, ReadOnlySpan<int> keys,
        float[] ka, int ko, float[] va, int vo, float scale, bool flat, float[] scoreBuffer, float[] dpBuffer, Span<float> dq)
    {
        dq.Clear();
        int count = keys.Length;
        if (count == 0) return (float.NegativeInfinity, 0f);
        Span<float> p = scoreBuffer.AsSpan(0, count), dp = dpBuffer.AsSpan(0, count);
        float logSumExp = 0f;
        if (flat) p.Fill(1f / count);
        else
        {
            for (int j = 0; j < count; j++) p[j] = TensorPrimitives.Dot(query, ka.AsSpan(ko + keys[j], query.Length)) * scale;
            float max = TensorPrimitives.Max(p);
            TensorPrimitives.Subtract(p, max, p);
            TensorPrimitives.Exp(p, p);
            float sum = TensorPrimitives.Sum(p);
            TensorPrimitives.Divide(p, sum, p);
            logSumExp = max + MathF.Log(sum);
        }
        for (int j = 0; j < count; j++) dp[j] = TensorPrimitives.Dot(gradOut, va.AsSpan(vo + keys[j], gradOut.Length));
        float delta = TensorPrimitives.Dot(p, dp);
        for (int j = 0; j < count; j++)
            TensorPrimitives.MultiplyAdd(ka.AsSpan(ko + keys[j], dq.Length), p[j] * (dp[j] - delta) * scale, dq, dq);
        return (logSumExp, delta);
    }

    /// <summary>
    /// Adds query i's share to key j: dK += dS·q (scaled by the caller), dV += P·dO, with P = e^(S − L), or
    /// <paramref name="uniformP"/> when that is a number (fully masked row).
    /// </summary>
    private static void KeyUpdate(ReadOnlySpan<float> query, ReadOnlySpan<float> gradOut, ReadOnlySpan<float> key, ReadOnlySpan<float> value,
        float scale, float uniformP, float logSumExp, float delta, Span<float> gk, Span<float> gv)
    {
        float p = float.IsNaN(uniformP) ? MathF.Exp(TensorPrimitives.Dot(query, key) * scale - logSumExp) : uniformP;
        float dp = TensorPrimitives.Dot(gradOut, value);
        TensorPrimitives.MultiplyAdd(query, p * (dp - delta), gk, gk);
        TensorPrimitives.MultiplyAdd(gradOut, p, gv, gv);
    }
}

/// <summary>
/// Which keys a causal query sees, from the int mask of its batch row. The mask holds 0 for padding and a
/// segment id (≥ 1; plain masks use 1) for real tokens, so several samples can be packed into one row: key j
/// is visible to query i iff j ≤ i, mask[j] ≠ 0 and, when the query itself is real (mask[i] ≠ 0),
/// mask[j] = mask[i]. A padding query (mask[i] = 0) keeps transformers' key-padding-only rule (it sees every
/// real key before it; none for left padding), so plain 0/1 masks behave exactly as before.
/// </summary>
public static class CausalVisibility
{
    /// <summary>For j ≤ i: does a key with mask value <paramref name="maskKey"/> count for a query with <paramref name="maskQuery"/>?</summary>
    public static bool Visible(int maskKey, int maskQuery) => maskKey != 0 && (maskQuery == 0 || maskKey == maskQuery);
}
