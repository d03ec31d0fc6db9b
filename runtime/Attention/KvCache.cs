namespace Qwen2VL.Runtime;

/// <summary>
/// A preallocated key/value cache for the causal attention sites of one module (one site per decoder layer):
/// keys and values [batch, capacity, kvHeads, headDim] per site, of which the first <see cref="Length"/>
/// positions are filled. A generated runner appends the new keys and values of each site, attends over the
/// cache, then advances <see cref="Length"/> once. Nothing is allocated after construction.
///
/// In bf16 (<see cref="IsBf16"/>, the cpu device: the compute dtype of <c>--dtype bf16</c>) the keys and values are
/// stored as bf16, rounded to nearest-even as they are appended (transformers' bf16 path caches the bf16 outputs of
/// k_proj/v_proj after the rotary), and <see cref="CpuAttention"/> widens them as it reads: half the cache's memory and
/// of the bytes a decode step reads from it.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly ComputeContext _ctx;
    private readonly DeviceTensor[] _keys;
    private readonly DeviceTensor[] _values;
    private readonly ushort[][]? _keyBits, _valueBits;

    public KvCache(ComputeContext ctx, int batch, int capacity, int kvHeads, int headDim, int sites = 1, bool bf16 = false)
    {
        if (batch <= 0 || capacity <= 0 || kvHeads <= 0 || headDim <= 0 || sites <= 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), "KV cache sizes must be positive");
        if (bf16 && !ctx.IsCpu)
            throw new ArgumentException($"a bf16 KV cache needs the cpu device (its attention reads bf16), this context is {ctx.Kind.Name()}");
        _ctx = ctx;
        Batch = batch;
        Capacity = capacity;
        KvHeads = kvHeads;
        HeadDim = headDim;
        IsBf16 = bf16;
        if (bf16)
        {
            int length = checked(batch * capacity * kvHeads * headDim);
            _keyBits = Enumerable.Range(0, sites).Select(_ => new ushort[length]).ToArray();
            _valueBits = Enumerable.Range(0, sites).Select(_ => new ushort[length]).ToArray();
            _keys = _keyBits.Select(bits => ctx.WrapBf16(bits, batch, capacity, kvHeads, headDim)).ToArray();
            _values = _valueBits.Select(bits => ctx.WrapBf16(bits, batch, capacity, kvHeads, headDim)).ToArray();
            return;
        }
        _keys = Enumerable.Range(0, sites).Select(_ => ctx.Allocate(batch, capacity, kvHeads, headDim)).ToArray();
        _values = Enumerable.Range(0, sites).Select(_ => ctx.Allocate(batch, capacity, kvHeads, headDim)).ToArray();
    }

    /// <summary>True when keys and values are stored as bf16 (see the class summary).</summary>
    public bool IsBf16 { get; }

    /// <summary>Bytes the keys and values of all sites occupy.</summary>
    public long Bytes => (IsBf16 ? 2L : 4L) * _keys.Sum(t => (long)t.Length) * 2;

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
        if (IsBf16)
        {
            ReadOnlySpan<float> ks = k.Span, vs = v.Span;
            for (var b = 0; b < Batch; b++)
            {
                var destination = (b * Capacity + Length) * row;
                Round(ks.Slice(b * count * row, count * row), _keyBits![site].AsSpan(destination, count * row));
                Round(vs.Slice(b * count * row, count * row), _valueBits![site].AsSpan(destination, count * row));
            }
            return;
        }
        for (var b = 0; b < Batch; b++)
        {
            var destination = (b * Capacity + Length) * row;
            _ctx.Copy(k.Slice(b * count * row, count * row, count * row), _keys[site].Slice(destination, count * row, count * row));
            _ctx.Copy(v.Slice(b * count * row, count * row, count * row), _values[site].Slice(destination, count * row, count * row));
        }
    }

    /// <summary>bits[i] = the bf16 nearest to source[i] (ties to even), as a bit pattern.</summary>
    private static void Round(ReadOnlySpan<float> source, Span<ushort> bits)
    {
        for (int i = 0; i < source.Length; i++)
            bits[i] = (ushort)(BitConverter.SingleToUInt32Bits(Training.Bf16.Round(source[i])) >> 16);
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
