namespace Qwen2VL.Tests.Training.Kernels;

/// <summary>
/// Attention forward and backward in float64 as transformers' eager attention computes them under autograd.
/// Each query row lists the element offsets of the keys it attends to; a uniform row (a causal query that sees
/// no key, whose scores are all s + float32-min) has P = 1/count over its listed keys and still passes its
/// gradient dS = P ⊙ (dP − Σ P dP) to q and k, because d(s + min)/ds = 1.
/// </summary>
internal static class AttentionReference
{
    public sealed record Row(int QueryAt, int[] KeyAts, bool Uniform);

    public static (double[] O, double[] DQ, double[] DK, double[] DV) Run(float[] q, float[] k, float[] v, float[] dOut,
        IEnumerable<Row> rows, int headDim, double scale)
    {
        var o = new double[q.Length];
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        foreach (Row row in rows)
        {
            int count = row.KeyAts.Length;
            if (count == 0) continue;
            var p = new double[count];
            if (row.Uniform) Array.Fill(p, 1.0 / count);
            else
            {
                for (int j = 0; j < count; j++) p[j] = Dot(q, row.QueryAt, k, row.KeyAts[j], headDim) * scale;
                double max = p.Max();
                for (int j = 0; j < count; j++) p[j] = Math.Exp(p[j] - max);
                double sum = p.Sum();
                for (int j = 0; j < count; j++) p[j] /= sum;
            }
            var dp = new double[count];
            double delta = 0;
            for (int j = 0; j < count; j++)
            {
                dp[j] = Dot(dOut, row.QueryAt, v, row.KeyAts[j], headDim);
                delta += p[j] * dp[j];
            }
            for (int j = 0; j < count; j++)
            {
                double ds = p[j] * (dp[j] - delta);
                for (int d = 0; d < headDim; d++)
                {
                    o[row.QueryAt + d] += p[j] * v[row.KeyAts[j] + d];
                    dq[row.QueryAt + d] += scale * ds * k[row.KeyAts[j] + d];
                    dk[row.KeyAts[j] + d] += scale * ds * q[row.QueryAt + d];
                    dv[row.KeyAts[j] + d] += p[j] * dOut[row.QueryAt + d];
                }
            }
        }
        return (o, dq, dk, dv);
    }

    /// <summary>Rows of causal attention with a 0 / segment-id mask: j ≤ i, mask[j] ≠ 0, and mask[j] = mask[i] for a real query.</summary>
    public static IEnumerable<Row> CausalRows(int[] mask, int batch, int seq, int heads, int kvHeads, int headDim)
    {
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < seq; i++)
                for (int h = 0; h < heads; h++)
                {
                    int kvh = h / (heads / kvHeads), own = mask[b * seq + i];
                    var visible = Enumerable.Range(0, i + 1)
                        .Where(j => mask[b * seq + j] != 0 && (own == 0 || mask[b * seq + j] == own)).ToList();
                    bool uniform = visible.Count == 0;
                    if (uniform) visible = Enumerable.Range(0, seq).ToList();
                    yield return new Row(((b * seq + i) * heads + h) * headDim,
                        visible.Select(j => ((b * seq + j) * kvHeads + kvh) * headDim).ToArray(), uniform);
                }
    }

    public static IEnumerable<Row> SegmentRows(int[] cu, int heads, int headDim)
    {
        for (int s = 0; s + 1 < cu.Length; s++)
            for (int i = cu[s]; i < cu[s + 1]; i++)
                for (int h = 0; h < heads; h++)
                    yield return new Row((i * heads + h) * headDim,
                        Enumerable.Range(cu[s], cu[s + 1] - cu[s]).Select(j => (j * heads + h) * headDim).ToArray(), false);
    }

    private static double Dot(float[] a, int aAt, float[] b, int bAt, int length)
    {
        double s = 0;
        for (int d = 0; d < length; d++) s += (double)a[aAt + d] * b[bAt + d];
        return s;
    }
}
