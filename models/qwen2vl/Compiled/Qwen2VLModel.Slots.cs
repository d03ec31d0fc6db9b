using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

public sealed partial class Qwen2VLModel
{
    /// <summary>KV caches for continuous batching: <paramref name="slots"/> sequences of up to <paramref name="capacity"/> positions each.</summary>
    public SlotCache CreateSlotCache(int slots, int capacity)
    {
        if (slots <= 0 || capacity <= 1)
            throw new ModelException($"a slot cache needs ≥ 1 slot and a capacity ≥ 2, got {slots} slots of {capacity}");
        return new(Context, _layers.Select(l => new KvCache(Context, slots, capacity, l.KvHeads, l.HeadDim)).ToArray(), slots, capacity);
    }

    /// <summary>
    /// One decode step of every slot at once: the token of each slot ([Slots] ids; any valid id for a free slot) at
    /// its own M-RoPE position ([3, Slots]) runs through the decoder layers as one batch, attending to its own row of
    /// the cache; returns the logits [Slots, Vocab]. Only the slots in <paramref name="active"/> advance; the rows of
    /// the others are computed and ignored (the generated runner steps the whole batch).
    /// </summary>
    public float[] DecodeSlots(SlotCache cache, long[] tokens, long[] positions, IReadOnlyList<int> active)
    {
        int slots = cache.Slots;
        if (tokens.Length != slots || positions.Length != 3 * slots)
            throw new ModelException($"a slot step takes {slots} tokens and {3 * slots} positions, got {tokens.Length} and {positions.Length}");
        cache.BeginStep(active);
        var h = EmbedTokens(tokens, slots, 1);                                                      // [Slots, 1, Hidden]
        var pos = _staging.UploadInt("positions", ToInt(positions), 3, slots, 1);
        for (int i = 0; i < _layers.Length; i++)
            h = _layers[i].Forward(h, pos, cache.Mask, cache.Layers[i]);                                // [Slots, 1, Hidden]
        var normed = _norm.Forward(h);                                                                // [Slots, 1, Hidden]
        return Context.Download(_head.Forward(normed.Reshape(slots, Hidden)));                        // [Slots, Vocab]
    }
}
