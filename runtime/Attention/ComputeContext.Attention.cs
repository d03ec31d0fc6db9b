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
    /// j ≤ i, mask[b, j] ≠ 0 and, when mask[b, i] ≠ 0, mask[b, j] = mask[b, i]. The mask holds 0 for padding and a
    /// segment id ≥ 1 for real tokens (plain masks use 1), so samples packed into one row attend only within
    /// themselves (<see cref="CausalVisibility"/>). A query with no visible key (a left-padding position) gets the mean of v over
    /// all <paramref name="seq"/> positions of its batch row (per kv head): transformers' eager attention adds
    /// float32-min to every masked score, so such a row holds seq equal scores and its softmax is uniform over
    /// every key. The logits at the last padding position predict the first real token, which the loss counts,
    /// so this is observable and must match.
    /// </summary>
    public void AttentionCausal(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        int batch, int seq, int heads, int kvHeads, int headDim, float scale) =>
        AttentionCausalCached(q, k, v, output, mask, batch, seq, seq, seq, heads, kvHeads, headDim, scale);

    /// <summary>
    /// Causal attention over a KV cache: k, v [batch, capacity, kvHeads, headDim] hold keyLength valid
    /// positions; mask is int32 [batch, capacity]; q, output [batch, queryLength, heads, headDim] are the
    /// last queryLength positions, so query i sits at position p = keyLength − queryLength + i and sees keys
    /// j ≤ p with mask[b, j] ≠ 0 and, when mask[b, p] ≠ 0, mask[b, j] = mask[b, p] (segment ids, see
    /// <see cref="CausalVisibility"/>); with none visible, the mean of v over the keyLength positions, as in
    /// <see cref="AttentionCausal"/>. Decoding is queryLength = 1.
    /// </summary>
    public void AttentionCausalCached(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        int batch, int queryLength, int keyLength, int capacity, int heads, int kvHeads, int headDim, float scale) =>
        AttentionCausalCached(q, k, v, output, mask, batch, queryLength, keyLength, capacity, heads, kvHeads, headDim, scale,
            CausalKernel.Auto);

    /// <summary>Which ILGPU kernel runs causal attention; tests pin one, callers use <see cref="CausalKernel.Auto"/>.</summary>
    internal enum CausalKernel { Auto, ThreadPerQuery, WarpPerQuery }

    /// <summary>
    /// Below this many (batch, head, query) rows a thread per row leaves the GPU idle, so each row gets a warp.
    /// </summary>
    internal const int WarpPerQueryBelowRows = 4096;

    internal void AttentionCausalCached(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor mask,
        int batch, int queryLength, int keyLength, int capacity, int heads, int kvHeads, int headDim, float scale, CausalKernel choice)
    {
        var args = new CausalAttentionArgs
        {
            Batch = batch, QueryLength = queryLength, KeyLength = keyLength, Capacity = capacity,
            Heads = heads, KvHeads = kvHeads, HeadDim = headDim, Scale = scale,
        };
        AttentionChecks.Causal(q, k, v, output, mask, args);
        if (IsCpu)
        {
            CpuAttention.Causal(q, k, v, output, mask, args);
            return;
        }
        CheckHeadDim(headDim);
        if (batch * queryLength == 0) return;
        int rows = batch * queryLength * heads;
        if (choice == CausalKernel.WarpPerQuery || (choice == CausalKernel.Auto && rows < WarpPerQueryBelowRows))
        {
            var warpKernel = CachedKernel("attention-causal-warp", typeof(CausalAttentionArgs), accelerator =>
                accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<int>, CausalAttentionArgs>(AttentionWarpKernel.Causal));
            int groups = (rows + AttentionWarpKernel.WarpsPerGroup - 1) / AttentionWarpKernel.WarpsPerGroup;
            warpKernel(new KernelConfig(groups, AttentionWarpKernel.WarpsPerGroup * Accelerator.WarpSize),
                q.View, k.View, v.View, output.View, mask.IntView, args);
            return;
        }
        var kernel = CachedKernel("attention-causal", typeof(CausalAttentionArgs), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<int>, CausalAttentionArgs>(AttentionKernels.Causal));
        kernel(rows, q.View, k.View, v.View, output.View, mask.IntView, args);
    }

    private static void CheckHeadDim(int headDim)
    {
        if (headDim > AttentionKernels.MaxHeadDim)
            throw new ArgumentException($"ILGPU attention supports head dim ≤ {AttentionKernels.MaxHeadDim}, got {headDim}");
    }
}
