namespace Qwen2VL.Dsl;

public static partial class Ops
{
    // Bidirectional attention within segments [cu[i], cu[i+1]) (vision tower); scale 1/sqrt(D).
    [Op(OpGroup.Attention, "q:[N,H,D]; k:[N,H,D]; v:[N,H,D]; cuSeqlens:[G]:i64 -> [N,H,D]",
        Grad = "dq = AttentionBackwardQ(q, k, v, cuSeqlens, dy); dk = AttentionBackwardK(q, k, v, cuSeqlens, dy); dv = AttentionBackwardV(q, k, v, cuSeqlens, dy)")]
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens)
    {
        const string op = nameof(Attention);
        OpChecks.Rank(op, "q", q, 3);
        if (!q.Shape.AsSpan().SequenceEqual(k.Shape) || !q.Shape.AsSpan().SequenceEqual(v.Shape))
            throw OpChecks.Error(op, $"q {OpChecks.S(q)}, k {OpChecks.S(k)} and v {OpChecks.S(v)} must have the same shape");
        OpChecks.Rank(op, "cuSeqlens", cuSeqlens, 1);
        int n = q.Shape[0], heads = q.Shape[1], d = q.Shape[2];
        var cu = new long[cuSeqlens.Count];
        for (int i = 0; i < cu.Length; i++) cu[i] = OpChecks.Int(op, "cuSeqlens", cuSeqlens.Data[i]);
        bool ok = cu.Length >= 1 && cu[0] == 0 && cu[^1] == n;
        for (int i = 1; ok && i < cu.Length; i++) ok = cu[i] >= cu[i - 1];
        if (!ok)
            throw OpChecks.Error(op, $"cuSeqlens [{string.Join(", ", cu)}] must rise from 0 to N = {n} for q {OpChecks.S(q)}");

        double scale = 1.0 / Math.Sqrt(d);
        var y = new double[q.Count];
        var scores = new double[n];
        for (int g = 0; g + 1 < cu.Length; g++)
        {
            int start = (int)cu[g], len = (int)(cu[g + 1] - cu[g]);
            for (int h = 0; h < heads; h++)
                for (int i = start; i < start + len; i++)
                {
                    for (int j = 0; j < len; j++)
                        scores[j] = scale * Dot(q, (i * heads + h) * d, k, ((start + j) * heads + h) * d, d);
                    SoftmaxInPlace(scores.AsSpan(0, len), scores.AsSpan(0, len));
                    for (int j = 0; j < len; j++)
                        Axpy(scores[j], v, ((start + j) * heads + h) * d, y, (i * heads + h) * d, d);
                }
        }
        return new Tensor((int[])q.Shape.Clone(), y);
    }

    // Causal attention with grouped KV heads (query head h uses KV head h / (H/KV)); mask [B,S] = 1 for real
    // tokens, 0 for padding (padded keys are excluded). scale 1/sqrt(D).
    // A query that sees no key at all (a left-padding position) gets the mean of V over all S positions of its
    // batch row. That is what transformers' eager attention computes: it adds float32-min to every masked score,
    // so such a row is S equal scores and its softmax is uniform over every key, masked or not. The value matters:
    // the logits at the last padding position predict the first real token, which the loss counts.
    [Op(OpGroup.Attention, "q:[B,S,H,D]; k:[B,S,KV,D]; v:[B,S,KV,D]; mask:[B,S]:i64 -> [B,S,H,D]",
        Grad = "dq = CausalAttentionBackwardQ(q, k, v, mask, dy); dk = CausalAttentionBackwardK(q, k, v, mask, dy); dv = CausalAttentionBackwardV(q, k, v, mask, dy)")]
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        const string op = nameof(CausalAttention);
        OpChecks.Rank(op, "q", q, 4);
        OpChecks.Rank(op, "k", k, 4);
        int b = q.Shape[0], s = q.Shape[1], heads = q.Shape[2], d = q.Shape[3], kv = k.Shape[2];
        if (k.Shape[0] != b || k.Shape[1] != s || k.Shape[3] != d || !k.Shape.AsSpan().SequenceEqual(v.Shape))
            throw OpChecks.Error(op, $"k {OpChecks.S(k)} and v {OpChecks.S(v)} must be [{b}, {s}, KV, {d}] for q {OpChecks.S(q)}");
        if (kv == 0 || heads % kv != 0)
            throw OpChecks.Error(op, $"{heads} query heads of q {OpChecks.S(q)} do not group over {kv} kv heads of k {OpChecks.S(k)}");
        if (mask.Rank != 2 || mask.Shape[0] != b || mask.Shape[1] != s)
            throw OpChecks.Error(op, $"mask {OpChecks.S(mask)} must be [{b}, {s}] for q {OpChecks.S(q)}");

        int group = heads / kv;
        double scale = 1.0 / Math.Sqrt(d);
        var y = new double[q.Count];
        var scores = new double[s];
        var keys = new int[s];
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < heads; h++)
            {
                int kh = h / group;
                for (int i = 0; i < s; i++)
                {
                    int m = 0;
                    for (int j = 0; j <= i; j++)
                        if (mask.Data[bi * s + j] != 0) keys[m++] = j;
                    int qOff = ((bi * s + i) * heads + h) * d;
                    if (m == 0)
                    {
                        // Nothing visible: uniform weights over all S keys of the row (see above).
                        for (int j = 0; j < s; j++) Axpy(1.0 / s, v, ((bi * s + j) * kv + kh) * d, y, qOff, d);
                        continue;
                    }
                    for (int t = 0; t < m; t++)
                        scores[t] = scale * Dot(q, qOff, k, ((bi * s + keys[t]) * kv + kh) * d, d);
                    SoftmaxInPlace(scores.AsSpan(0, m), scores.AsSpan(0, m));
                    for (int t = 0; t < m; t++)
                        Axpy(scores[t], v, ((bi * s + keys[t]) * kv + kh) * d, y, qOff, d);
                }
            }
        return new Tensor((int[])q.Shape.Clone(), y);
    }

    private static double Dot(Tensor a, int aOff, Tensor b, int bOff, int n)
    {
        double acc = 0;
        for (int i = 0; i < n; i++) acc += a.Data[aOff + i] * b.Data[bOff + i];
        return acc;
    }

    private static void Axpy(double alpha, Tensor x, int xOff, double[] y, int yOff, int n)
    {
        for (int i = 0; i < n; i++) y[yOff + i] += alpha * x.Data[xOff + i];
    }

    // Attention's backward ops, one per operand (the generated code computes all three in one provider call). For a
    // query with visible keys j: P = softmax(scale·q·kⱼ), dvⱼ += Pⱼ·dy, dSⱼ = Pⱼ·(dy·vⱼ − Σ P·(dy·v)),
    // dq += scale·Σ dSⱼ·kⱼ, dkⱼ += scale·dSⱼ·q.

    /// <summary>Attention's query gradient.</summary>
    [Op(OpGroup.Attention, "q:[N,H,D]; k:[N,H,D]; v:[N,H,D]; cuSeqlens:[G]:i64; dy:[N,H,D] -> [N,H,D]")]
    public static Tensor AttentionBackwardQ(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens, Tensor dy) => SegmentGrads(q, k, v, cuSeqlens, dy).Q;

    /// <summary>Attention's key gradient.</summary>
    [Op(OpGroup.Attention, "q:[N,H,D]; k:[N,H,D]; v:[N,H,D]; cuSeqlens:[G]:i64; dy:[N,H,D] -> [N,H,D]")]
    public static Tensor AttentionBackwardK(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens, Tensor dy) => SegmentGrads(q, k, v, cuSeqlens, dy).K;

    /// <summary>Attention's value gradient.</summary>
    [Op(OpGroup.Attention, "q:[N,H,D]; k:[N,H,D]; v:[N,H,D]; cuSeqlens:[G]:i64; dy:[N,H,D] -> [N,H,D]")]
    public static Tensor AttentionBackwardV(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens, Tensor dy) => SegmentGrads(q, k, v, cuSeqlens, dy).V;

    /// <summary>CausalAttention's query gradient.</summary>
    [Op(OpGroup.Attention, "q:[B,S,H,D]; k:[B,S,KV,D]; v:[B,S,KV,D]; mask:[B,S]:i64; dy:[B,S,H,D] -> [B,S,H,D]")]
    public static Tensor CausalAttentionBackwardQ(Tensor q, Tensor k, Tensor v, Tensor mask, Tensor dy) => CausalGrads(q, k, v, mask, dy).Q;

    /// <summary>CausalAttention's key gradient (each KV head sums over its query heads).</summary>
    [Op(OpGroup.Attention, "q:[B,S,H,D]; k:[B,S,KV,D]; v:[B,S,KV,D]; mask:[B,S]:i64; dy:[B,S,H,D] -> [B,S,KV,D]")]
    public static Tensor CausalAttentionBackwardK(Tensor q, Tensor k, Tensor v, Tensor mask, Tensor dy) => CausalGrads(q, k, v, mask, dy).K;

    /// <summary>CausalAttention's value gradient (each KV head sums over its query heads).</summary>
    [Op(OpGroup.Attention, "q:[B,S,H,D]; k:[B,S,KV,D]; v:[B,S,KV,D]; mask:[B,S]:i64; dy:[B,S,H,D] -> [B,S,KV,D]")]
    public static Tensor CausalAttentionBackwardV(Tensor q, Tensor k, Tensor v, Tensor mask, Tensor dy) => CausalGrads(q, k, v, mask, dy).V;

    private static (Tensor Q, Tensor K, Tensor V) SegmentGrads(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens, Tensor dy)
    {
        Attention(q, k, v, cuSeqlens); // the forward's checks
        int heads = q.Shape[1], d = q.Shape[2];
        var (dq, dk, dv) = (new double[q.Count], new double[k.Count], new double[v.Count]);
        var keys = new int[q.Shape[0]];
        for (int g = 0; g + 1 < cuSeqlens.Count; g++)
        {
            int start = (int)cuSeqlens.Data[g], len = (int)cuSeqlens.Data[g + 1] - start;
            for (int h = 0; h < heads; h++)
                for (int i = start; i < start + len; i++)
                {
                    for (int j = 0; j < len; j++) keys[j] = ((start + j) * heads + h) * d;
                    AttendBackward(q, k, v, dy, dq, dk, dv, (i * heads + h) * d, keys, len, d);
                }
        }
        return (new Tensor((int[])q.Shape.Clone(), dq), new Tensor((int[])k.Shape.Clone(), dk), new Tensor((int[])v.Shape.Clone(), dv));
    }

    private static (Tensor Q, Tensor K, Tensor V) CausalGrads(Tensor q, Tensor k, Tensor v, Tensor mask, Tensor dy)
    {
        CausalAttention(q, k, v, mask); // the forward's checks
        int b = q.Shape[0], s = q.Shape[1], heads = q.Shape[2], d = q.Shape[3], kv = k.Shape[2], group = heads / kv;
        var (dq, dk, dv) = (new double[q.Count], new double[k.Count], new double[v.Count]);
        var keys = new int[s];
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < s; i++)
                {
                    int m = 0;
                    for (int j = 0; j <= i; j++)
                        if (mask.Data[bi * s + j] != 0) keys[m++] = ((bi * s + j) * kv + h / group) * d;
                    int qOff = ((bi * s + i) * heads + h) * d;
                    if (m == 0)
                    {
                        // The forward's uniform mean over all S values: only v has a gradient.
                        for (int j = 0; j < s; j++) Axpy(1.0 / s, dy, qOff, dv, ((bi * s + j) * kv + h / group) * d, d);
                        continue;
                    }
                    AttendBackward(q, k, v, dy, dq, dk, dv, qOff, keys, m, d);
                }
        return (new Tensor((int[])q.Shape.Clone(), dq), new Tensor((int[])k.Shape.Clone(), dk), new Tensor((int[])v.Shape.Clone(), dv));
    }

    /// <summary>One query row's contribution to dq, dk, dv over its visible keys (offsets of their k and v rows).</summary>
    private static void AttendBackward(Tensor q, Tensor k, Tensor v, Tensor dy, double[] dq, double[] dk, double[] dv, int qOff, int[] keys, int m, int d)
    {
        double scale = 1.0 / Math.Sqrt(d);
        var p = new double[m];
        for (int t = 0; t < m; t++) p[t] = scale * Dot(q, qOff, k, keys[t], d);
        SoftmaxInPlace(p, p);
        var dp = new double[m];
        double sum = 0;
        for (int t = 0; t < m; t++)
        {
            dp[t] = Dot(dy, qOff, v, keys[t], d);
            sum += p[t] * dp[t];
        }
        for (int t = 0; t < m; t++)
        {
            double ds = p[t] * (dp[t] - sum) * scale;
            Axpy(p[t], dy, qOff, dv, keys[t], d);
            Axpy(ds, k, keys[t], dq, qOff, d);
            Axpy(ds, q, qOff, dk, keys[t], d);
        }
    }
}
