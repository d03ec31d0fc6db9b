namespace Qwen2VL.Runtime;

/// <summary>
/// A preallocated key/value cache for the causal attention sites of one module (one site per decoder layer):
/// keys and values [batch, capacity, kvHeads, headDim] per site, of which the first <see cref="Length"/>
/// positions are filled. A generated runner appends the new keys and values of each site, attends over the
/// cache, then advances <see cref="Length"/> once. Nothing is allocated after construction.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly ComputeContext _ctx;
    private readonly DeviceTensor[] _keys;
    private readonly DeviceTensor[] _values;

    public KvCache(ComputeContext ctx, int batch, int capacity, int kvHeads, int headDim, int sites = 1)
    {
        if (batch <= 0 || capacity <= 0 || kvHeads <= 0 || headDim <= 0 || sites <= 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), "KV cache sizes must be positive");
        _ctx = ctx;
        Batch = batch;
        Capacity = capacity;
        KvHeads = kvHeads;
        HeadDim = headDim;
        _keys = Enumerable.Range(0, sites).Select(_ => ctx.Allocate(batch, capacity, kvHeads, headDim)).ToArray();
        _values = Enumerable.Range(0, sites).Select(_ => ctx.Allocate(batch, capacity, kvHeads, headDim)).ToArray();
    }

    public int Batch { get; }
    public int Capacity { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }

    /// <summary>Positions already cached (the same for every site).</summary>
    public int Length { get; private set; }

    public DeviceTensor Keys(int site) => _keys[site];

    public DeviceTensor Values(int site) => _values[site];

    /// <summary>Copies k, v [batch, count, kvHeads, headDim] into positions [Length, Length + count) of a site.</summary>
    public void Append(int site, DeviceTensor k, DeviceTensor v)
    {
        if (k.Shape.Length != 4 || k.Shape[0] != Batch || k.Shape[2] != KvHeads || k.Shape[3] != HeadDim || !k.Shape.AsSpan().SequenceEqual(v.Shape))
            throw new ModelException($"KV cache: keys {k} / values {v} do not fit a cache of [{Batch}, {Capacity}, {KvHeads}, {HeadDim}]");
        var count = k.Shape[1];
        if (Length + count > Capacity)
            throw new ModelException($"KV cache is full: {Length} cached + {count} new positions exceed its capacity of {Capacity}");
        var row = KvHeads * HeadDim;
        for (var b = 0; b < Batch; b++)
        {
            var destination = (b * Capacity + Length) * row;
            _ctx.Copy(k.Slice(b * count * row, count * row, count * row), _keys[site].Slice(destination, count * row, count * row));
            _ctx.Copy(v.Slice(b * count * row, count * row, count * row), _values[site].Slice(destination, count * row, count * row));
        }
    }

    /// <summary>Marks <paramref name="count"/> more positions as cached (after every site appended them).</summary>
    public void Advance(int count) => Length += count;

    /// <summary>Forgets the cached positions (the buffers are kept for the next sequence).</summary>
    public void Reset() => Length = 0;

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values))
            t.Dispose();
    }
}
