using ILGPU;
using ILGPU.Algorithms;

namespace Qwen2VL.Runtime;

/// <summary>
/// Causal attention with one warp per (batch, head, query), for decoding, where one thread per query would
/// leave the GPU nearly idle (batch · heads threads) and walk the whole KV cache serially. Lane t takes keys
/// t, t + 32, …; each lane keeps its own online softmax (max m, sum l, accumulator), and the warp merges
/// them with butterfly shuffles: M = max m, L = Σ l·e^(m−M), out = Σ acc·e^(m−M) / L.
/// </summary>
internal static class AttentionWarpKernel
{
    public const int WarpsPerGroup = 4;

    public static void Causal(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> output, ArrayView<int> mask, CausalAttentionArgs args)
    {
        int item = Grid.IdxX * WarpsPerGroup + Warp.WarpIdx;
        int lane = Warp.LaneIdx;
        bool valid = item < args.Batch * args.QueryLength * args.Heads;
        int i = item % args.QueryLength, h = item / args.QueryLength % args.Heads, b = item / (args.QueryLength * args.Heads);
        int kvh = h / (args.Heads / args.KvHeads);
        int position = args.KeyLength - args.QueryLength + i;
        int queryAt = ((b * args.QueryLength + i) * args.Heads + h) * args.HeadDim;

        ArrayView<float> acc = LocalMemory.Allocate1D<float>(AttentionKernels.MaxHeadDim);
        for (int d = 0; d < args.HeadDim; d++) acc[d] = 0f;
        float m = float.NegativeInfinity, l = 0f;
        if (valid)
        {
            int own = mask[b * args.Capacity + position]; // 0 = padding, else the query's segment id (CausalVisibility)
            for (int j = lane; j <= position; j += Warp.WarpSize)
            {
                int maskJ = mask[b * args.Capacity + j];
                if (maskJ == 0 || (own != 0 && maskJ != own)) continue;
                int keyAt = ((b * args.Capacity + j) * args.KvHeads + kvh) * args.HeadDim;
                float s = 0f;
                for (int d = 0; d < args.HeadDim; d++) s += q[queryAt + d] * k[keyAt + d];
                s *= args.Scale;
                float newMax = XMath.Max(m, s);
                float correction = XMath.Exp(m - newMax);
                float p = XMath.Exp(s - newMax);
                l = l * correction + p;
                for (int d = 0; d < args.HeadDim; d++) acc[d] = acc[d] * correction + p * v[keyAt + d];
                m = newMax;
            }
        }

        // Every lane joins every shuffle (also lanes of a warp past the last item), so the loops stay uniform.
        float warpMax = m;
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            warpMax = XMath.Max(warpMax, Warp.ShuffleXor(warpMax, offset));
        if (warpMax == float.NegativeInfinity)
        {
            // No visible key (left padding): transformers' eager softmax over all-float32-min scores is uniform over
            // every key of the row, so the output is the mean of v over the row. warpMax is warp-uniform here.
            if (valid)
                for (int j = lane; j < args.KeyLength; j += Warp.WarpSize)
                {
                    int valueAt = ((b * args.Capacity + j) * args.KvHeads + kvh) * args.HeadDim;
                    for (int d = 0; d < args.HeadDim; d++) acc[d] += v[valueAt + d];
                    l += 1f;
                }
            m = 0f;
            warpMax = 0f;
        }
        // A lane that saw no key has m = −∞ and contributes nothing.
        float weight = m == float.NegativeInfinity ? 0f : XMath.Exp(m - warpMax);
        float total = l * weight;
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            total += Warp.ShuffleXor(total, offset);
        float inverse = total > 0f ? 1f / total : 0f;
        for (int d = 0; d < args.HeadDim; d++)
        {
            float part = acc[d] * weight;
            for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
                part += Warp.ShuffleXor(part, offset);
            if (valid && lane == 0) output[queryAt + d] = part * inverse;
        }
    }
}
