using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    /// <summary>
    /// Bidirectional attention within segments: q, k, v, output are [n, heads, headDim]; cuSeqlens is int32
    /// [G] with 0 = c₀ ≤ … ≤ c_{G−1} = n, and a query in [c_s, c_{s+1}) sees exactly the keys of that range.
    /// </summary>
    public void AttentionSegments(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor cuSeqlens,
        int n, int heads, int headDim, float scale)
    {
        if (IsCpu)
        {
            CpuAttention.Segments(q, k, v, output, cuSeqlens, n, heads, headDim, scale);
            return;
        }
        AttentionChecks.Segments(q, k, v, output, cuSeqlens, n, heads, headDim);
        CheckHeadDim(headDim);
        if (n == 0) return;
        var kernel = CachedKernel("attention-segments", typeof(SegmentAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<int>, SegmentAttentionArgs>(AttentionKernels.Segments));
        var args = new SegmentAttentionArgs { N = n, Heads = heads, HeadDim = headDim, Segments = cuSeqlens.Length, Scale = scale };
        kernel(n * heads, q.View, k.View, v.View, output.View, cuSeqlens.IntView, args);
    }

    /// <summary>
    /// Causal attention with grouped KV heads: q, output [batch, seq, heads, headDim]; k, v [batch, seq,
    /// kvHeads, headDim]; query head h reads kv head h / (heads / kvHeads); key j is visible to query i iff
    /// j ≤ i and mask[b, j] ≠ 0. A query with no visible key (a left-padding position) gets the mean of v over
    /// all <paramref name="seq"/> positions of its batch row (per kv head): transformers' eager attention adds
    /// float32-min to every masked score, so such a row holds seq equal scores and its softmax is uniform over
    /// every key. The logits at the last padding position predict the first real token, which the loss counts,
    /// so this is observable and must match.
    /// </summary>
    public void AttentionCausal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        int batch, int seq, int heads, int kvHeads, int headDim, float scale)
    {
        if (IsCpu)
        {
            CpuAttention.Causal(q, k, v, output, mask, batch, seq, heads, kvHeads, headDim, scale);
            return;
        }
        AttentionChecks.Causal(q, k, v, output, mask, batch, seq, heads, kvHeads, headDim);
        CheckHeadDim(headDim);
        if (batch * seq == 0) return;
        var kernel = CachedKernel("attention-causal", typeof(CausalAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<int>, CausalAttentionArgs>(AttentionKernels.Causal));
        var args = new CausalAttentionArgs { Batch = batch, Seq = seq, Heads = heads, KvHeads = kvHeads, HeadDim = headDim, Scale = scale };
        kernel(batch * seq * heads, q.View, k.View, v.View, output.View, mask.IntView, args);
    }

    private static void CheckHeadDim(int headDim)
    {
        if (headDim > AttentionKernels.MaxHeadDim)
            throw new ArgumentException($"ILGPU attention supports head dim ≤ {AttentionKernels.MaxHeadDim}, got {headDim}");
    }
}
