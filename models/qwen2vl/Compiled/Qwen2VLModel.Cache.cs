using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The decoder's KV caches for one batch: a preallocated <see cref="KvCache"/> per layer and the padding mask over
/// every position the caches can hold ([Batch, Capacity]: the prompt's mask, then 1 for each generated token).
/// </summary>
public sealed class DecoderCache : IDisposable
{
    private readonly int[] _mask;

    internal DecoderCache(ComputeContext ctx, KvCache[] layers, int batch, int capacity)
    {
        Layers = layers;
        Batch = batch;
        Capacity = capacity;
        _mask = new int[batch * capacity];
        Mask = ctx.AllocateInt(batch, capacity);
    }

    internal KvCache[] Layers { get; }
    internal DeviceTensor Mask { get; }
    public int Batch { get; }
    public int Capacity { get; }

    /// <summary>Positions cached so far.</summary>
    public int Length => Layers[0].Length;

    /// <summary>
    /// Records the mask of <paramref name="count"/> new positions ([Batch, count]) before they run: only those
    /// entries are copied to the device (the rest of the device mask already holds what was recorded before).
    /// </summary>
    internal void ExtendMask(ComputeContext ctx, long[] mask, int count)
    {
        if (Length + count > Capacity)
            throw new ModelException($"the KV cache holds {Capacity} positions; {Length} are used and {count} more were asked for");
        for (var b = 0; b < Batch; b++)
        {
            int at = b * Capacity + Length;
            for (var i = 0; i < count; i++)
                _mask[at + i] = (int)mask[b * count + i];
            ctx.CopyFrom(_mask.AsSpan(at, count), Mask.Slice(at, count, count));
        }
    }

    public void Dispose()
    {
        foreach (var layer in Layers)
            layer.Dispose();
        Mask.Dispose();
    }
}

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// KV caches for <paramref name="batch"/> rows of up to <paramref name="capacity"/> positions (prompt + new tokens),
    /// in bf16 where <see cref="KvCacheBf16"/> says so.
    /// </summary>
    public DecoderCache CreateCache(int batch, int capacity) =>
        new(Context, _layers.Select(l => new KvCache(Context, batch, capacity, l.KvHeads, l.HeadDim, bf16: KvCacheBf16)).ToArray(), batch, capacity);

    /// <summary>
    /// True when <see cref="CreateCache"/> stores keys and values in bf16: loaded with <c>--dtype bf16</c> on the cpu
    /// device (the CPU attention reads a bf16 cache; on ILGPU devices the cache stays f32).
    /// </summary>
    public bool KvCacheBf16 { get; private init; }

    /// <summary>
    /// Runs <paramref name="count"/> new positions (embeddings [B, count, Hidden] on the device, as <see cref="Embed"/>
    /// leaves them; M-RoPE positions [3, B, count], mask [B, count]) through the decoder with the KV caches, appending
    /// them, and returns the last position's logits [B, Vocab]. The prompt is the first call (prefill).
    /// </summary>
    public float[] DecodeWithCache(DecoderCache cache, DeviceTensor embeddings, long[] positions, long[] mask, int count) =>
        Decode(cache, embeddings, positions, mask, count);

    /// <summary>
    /// As above for tokens [B, count]: their embeddings are gathered on the device (each generated token is one call
    /// with count 1: a decode step moves its ids, positions and mask in and the logits [B, Vocab] out, nothing else).
    /// </summary>
    public float[] DecodeWithCache(DecoderCache cache, long[] ids, long[] positions, long[] mask, int count) =>
        Decode(cache, EmbedTokens(ids, cache.Batch, count), positions, mask, count);

    private float[] Decode(DecoderCache cache, DeviceTensor embeddings, long[] positions, long[] mask, int count)
    {
        int batch = cache.Batch;
        if (embeddings.Length != batch * count * Hidden || positions.Length != 3 * batch * count || mask.Length != batch * count)
            throw new ModelException($"a cached step over [{batch}, {count}] needs embeddings [{batch}, {count}, {Hidden}], positions [3, {batch}, {count}] and a mask [{batch}, {count}]; got {embeddings}, {positions.Length} positions, {mask.Length} mask values");
        cache.ExtendMask(Context, mask, count);
        var pos = _staging.UploadInt("positions", ToInt(positions), 3, batch, count);
        var h = embeddings.Reshape(batch, count, Hidden);
        for (int i = 0; i < _layers.Length; i++)
            h = _layers[i].Forward(h, pos, cache.Mask, cache.Layers[i]);                                // [B, count, Hidden]
        var normed = _norm.Forward(h);                                                                // [B, count, Hidden]
        return Context.Download(_head.Forward(LastRows(normed, batch, count)));                       // [B, Vocab]
    }

    /// <summary>The last of every row's <paramref name="count"/> positions, [B, Hidden], gathered on the device.</summary>
    private DeviceTensor LastRows(DeviceTensor states, int batch, int count)
    {
        if (count == 1) return states.Reshape(batch, Hidden);
        var last = _staging.View("last-rows", batch, Hidden);
        for (int b = 0; b < batch; b++)
            Context.Copy(states.Slice(((b + 1) * count - 1) * Hidden, Hidden, Hidden), last.Slice(b * Hidden, Hidden, Hidden));
        return last;
    }
}
