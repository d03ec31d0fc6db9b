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
        Mask = ctx.UploadInt(_mask, batch, capacity);
    }

    internal KvCache[] Layers { get; }
    internal DeviceTensor Mask { get; }
    public int Batch { get; }
    public int Capacity { get; }

    /// <summary>Positions cached so far.</summary>
    public int Length => Layers[0].Length;

    /// <summary>Records the mask of <paramref name="count"/> new positions ([Batch, count]) before they run.</summary>
    internal void ExtendMask(ComputeContext ctx, long[] mask, int count)
    {
        if (Length + count > Capacity)
            throw new ModelException($"the KV cache holds {Capacity} positions; {Length} are used and {count} more were asked for");
        for (var b = 0; b < Batch; b++)
            for (var i = 0; i < count; i++)
                _mask[b * Capacity + Length + i] = (int)mask[b * count + i];
        ctx.CopyFrom(_mask, Mask);
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
    /// Runs <paramref name="count"/> new positions (embeddings [B, count, Hidden], M-RoPE positions [3, B, count],
    /// mask [B, count]) through the decoder with the KV caches, appending them, and returns the last position's
    /// logits [B, Vocab]. The prompt is the first call (prefill); each generated token is one more call (decode).
    /// </summary>
    public float[] DecodeWithCache(DecoderCache cache, float[] embeddings, long[] positions, long[] mask, int count)
    {
        int batch = cache.Batch;
        cache.ExtendMask(Context, mask, count);
        using var x = Context.Upload(embeddings, batch, count, Hidden);
        using var pos = Context.UploadInt(ToInt(positions), 3, batch, count);
        var h = x;
        for (int i = 0; i < _layers.Length; i++)
            h = _layers[i].Forward(h, pos, cache.Mask, cache.Layers[i]);                                // [B, count, Hidden]
        var normed = Context.Download(_norm.Forward(h));                                              // [B, count, Hidden]
        var last = new float[batch * Hidden];
        for (int b = 0; b < batch; b++)
            Array.Copy(normed, ((long)b * count + count - 1) * Hidden, last, (long)b * Hidden, Hidden);
        using var lastT = Context.Upload(last, batch, Hidden);
        return Context.Download(_head.Forward(lastT));
    }
}
