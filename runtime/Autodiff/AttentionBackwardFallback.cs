namespace Qwen2VL.Runtime;

/// <summary>
/// TEMPORARY host implementation of the attention backward passes (see <see cref="TrainingFallbacks"/>): recomputes
/// the probabilities in double precision. Fully masked causal rows attend uniformly to every key of their row, as in
/// transformers' eager attention, and get the matching gradient.
/// </summary>
public static class AttentionBackwardFallback
{
    public static void AttentionSegmentsBackward(this ComputeContext ctx, DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, DeviceTensor cuSeqlens, int n, int heads, int headDim, float scale)
    {
        var cu = ctx.DownloadInt(cuSeqlens);
        var starts = new int[n];
        var ends = new int[n];
        for (int s = 0; s + 1 < cu.Length; s++)
            for (int i = cu[s]; i < cu[s + 1]; i++) (starts[i], ends[i]) = (cu[s], cu[s + 1]);
        Run(ctx, q, k, v, dOut, dQ, dK, dV, rows: n, keysPerRow: n, heads, heads, headDim, scale,
            (i, h) => Enumerable.Range(starts[i], ends[i] - starts[i]).ToArray(), i => i, i => i, j => j);
    }

    public static void AttentionCausalBackward(this ComputeContext ctx, DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, DeviceTensor mask, int batch, int seq, int heads, int kvHeads, int headDim, float scale)
    {
        var m = ctx.DownloadInt(mask);
        Run(ctx, q, k, v, dOut, dQ, dK, dV, rows: batch * seq, keysPerRow: seq, heads, kvHeads, headDim, scale,
            (row, h) =>
            {
                int b = row / seq, i = row % seq;
                var visible = Enumerable.Range(0, i + 1).Where(j => Visible(m[b * seq + j], m[b * seq + i])).ToArray();
                return visible.Length > 0 ? visible : Enumerable.Range(0, seq).ToArray();
            }, row => row, row => row, j => j, keyBase: row => row / seq * seq, uniformWhenEmpty: row => !Enumerable.Range(row / seq * seq, row % seq + 1).Any(j => Visible(m[j], m[row])));
    }

    /// <summary>
    /// A key is visible when it is real and, in a packed row, in the query's segment; a padding query (0) sees every real
    /// earlier key, as transformers' key-only padding mask does.
    /// </summary>
    private static bool Visible(int key, int query) => key != 0 && (query == 0 || key == query);

    private static void Run(ComputeContext ctx, DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, int rows, int keysPerRow, int heads, int kvHeads, int headDim, float scale,
        Func<int, int, int[]> keysOf, Func<int, int> queryRow, Func<int, int> outRow, Func<int, int> keyIndex,
        Func<int, int>? keyBase = null, Func<int, bool>? uniformWhenEmpty = null)
    {
        float[] qa = ctx.Download(q), ka = ctx.Download(k), va = ctx.Download(v), da = ctx.Download(dOut);
        var dq = new double[qa.Length];
        var dk = new double[ka.Length];
        var dv = new double[va.Length];
        int group = heads / kvHeads;
        for (int row = 0; row < rows; row++)
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / group;
                var keys = keysOf(row, h).Select(j => (keyBase?.Invoke(row) ?? 0) + keyIndex(j)).ToArray();
                bool uniform = uniformWhenEmpty?.Invoke(row) ?? false;
                int qAt = (queryRow(row) * heads + h) * headDim;
                var s = new double[keys.Length];
                for (int t = 0; t < keys.Length; t++)
                {
                    int kAt = (keys[t] * kvHeads + kvh) * headDim;
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) dot += (double)qa[qAt + d] * ka[kAt + d];
                    s[t] = uniform ? 0 : dot * scale;
                }
                double max = s.Length > 0 ? s.Max() : 0, sum = 0;
                var p = s.Select(x => Math.Exp(x - max)).ToArray();
                sum = p.Sum();
                for (int t = 0; t < p.Length; t++) p[t] /= sum;
                var dp = new double[keys.Length];
                int oAt = (outRow(row) * heads + h) * headDim;
                for (int t = 0; t < keys.Length; t++)
                {
                    int vAt = (keys[t] * kvHeads + kvh) * headDim;
                    for (int d = 0; d < headDim; d++)
                    {
                        dp[t] += (double)da[oAt + d] * va[vAt + d];
                        dv[vAt + d] += p[t] * da[oAt + d];
                    }
                }
                double rowDot = 0;
                for (int t = 0; t < keys.Length; t++) rowDot += p[t] * dp[t];
                for (int t = 0; t < keys.Length; t++)
                {
                    double ds = p[t] * (dp[t] - rowDot) * scale;
                    int kAt = (keys[t] * kvHeads + kvh) * headDim;
                    for (int d = 0; d < headDim; d++)
                    {
                        dq[qAt + d] += ds * ka[kAt + d];
                        dk[kAt + d] += ds * qa[qAt + d];
                    }
                }
            }
        ctx.CopyFrom(dq.Select(x => (float)x).ToArray(), dQ);
        ctx.CopyFrom(dk.Select(x => (float)x).ToArray(), dK);
        ctx.CopyFrom(dv.Select(x => (float)x).ToArray(), dV);
    }
}
