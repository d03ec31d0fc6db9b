using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    /// <summary>
    /// Gradients of <see cref="AttentionSegments"/>: given the forward inputs q, k, v [n, heads, headDim] and the
    /// gradient of its output dOut, overwrites dQ, dK, dV [n, heads, headDim]. The probabilities are recomputed.
    /// </summary>
    public void AttentionSegmentsBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, DeviceTensor cuSeqlens, int n, int heads, int headDim, float scale)
    {
        AttentionChecks.Segments(q, k, v, dOut, cuSeqlens, n, heads, headDim);
        AttentionChecks.Segments(dQ, dK, dV, dOut, cuSeqlens, n, heads, headDim);
        if (IsCpu)
        {
            CpuAttentionBackward.Segments(q, k, v, dOut, dQ, dK, dV, cuSeqlens, n, heads, headDim, scale);
            return;
        }
        CheckHeadDim(headDim);
        if (n == 0) return;
        var args = new SegmentAttentionArgs { N = n, Heads = heads, HeadDim = headDim, Segments = cuSeqlens.Length, Scale = scale };
        var rows = CachedKernel("attention-segments-backward-rows", typeof(SegmentAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<int>, SegmentAttentionArgs>(AttentionBackwardKernels.SegmentRows));
        var keys = CachedKernel("attention-segments-backward-keys", typeof(SegmentAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, SegmentAttentionArgs>(AttentionBackwardKernels.SegmentKeys));
        DeviceTensor stats = Scratch.View("attention-segments-backward-stats", n * heads, 3);
        rows(n * heads, q.View, k.View, v.View, dOut.View, dQ.View, stats.View, cuSeqlens.IntView, args);
        keys(n * heads, q.View, k.View, v.View, dOut.View, dK.View, dV.View, stats.View, cuSeqlens.IntView, args);
    }

    /// <summary>
    /// Gradients of <see cref="AttentionCausal"/> (same layout: q, dOut, dQ [batch, seq, heads, headDim]; k, v, dK, dV
    /// [batch, seq, kvHeads, headDim]; mask int32 [batch, seq] of 0 / segment ids, see <see cref="CausalVisibility"/>).
    /// dQ, dK, dV are overwritten; dK and dV of a kv head sum over its query heads. The probabilities are recomputed.
    /// Matches autograd through transformers' eager attention: a query with no visible key has uniform P = 1/seq
    /// over all seq keys of its row (its masked scores are s + float32-min, whose derivative in s is 1), so
    /// dS = P ⊙ (dP − Σ_j P_j dP_j) flows into dQ and into dK of every key of the row, and dV gets P·dO.
    /// </summary>
    public void AttentionCausalBackward(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor dOut,
        DeviceTensor dQ, DeviceTensor dK, DeviceTensor dV, DeviceTensor mask,
        int batch, int seq, int heads, int kvHeads, int headDim, float scale)
    {
        var args = new CausalAttentionArgs
        {
            Batch = batch, QueryLength = seq, KeyLength = seq, Capacity = seq,
            Heads = heads, KvHeads = kvHeads, HeadDim = headDim, Scale = scale,
        };
        AttentionChecks.Causal(q, k, v, dOut, mask, args);
        AttentionChecks.Causal(dQ, dK, dV, dOut, mask, args);
        if (IsCpu)
        {
            CpuAttentionBackward.Causal(q, k, v, dOut, dQ, dK, dV, mask, args);
            return;
        }
        CheckHeadDim(headDim);
        if (batch * seq == 0) return;
        var rows = CachedKernel("attention-causal-backward-rows", typeof(CausalAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<int>, CausalAttentionArgs>(AttentionBackwardKernels.CausalRows));
        var keys = CachedKernel("attention-causal-backward-keys", typeof(CausalAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, CausalAttentionArgs>(AttentionBackwardKernels.CausalKeys));
        DeviceTensor stats = Scratch.View("attention-causal-backward-stats", batch * heads * seq, 3);
        rows(batch * heads * seq, q.View, k.View, v.View, dOut.View, dQ.View, stats.View, mask.IntView, args);
        keys(batch * kvHeads * seq, q.View, k.View, v.View, dOut.View, dK.View, dV.View, stats.View, mask.IntView, args);
    }
}
