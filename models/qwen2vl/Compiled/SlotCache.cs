using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The decoder's KV caches for continuous batching: <see cref="Slots"/> rows, each holding one sequence of its own
/// length, stepped together by <see cref="Qwen2VLModel.DecodeSlots"/>.
/// </summary>
/// <remarks>
/// The generated decoder runner appends every row's new key and value at the same cache column (one
/// <see cref="KvCache.Length"/> per cache), so sequences of different lengths share columns the way a left-padded
/// batch does: a row's sequence occupies the columns [<see cref="Length"/> − its length, <see cref="Length"/>), the
/// columns before it are masked out (mask 0; the causal attention skips them) and its M-RoPE positions are passed
/// explicitly, so the column a token sits in never changes what it computes. A new sequence is prefilled on its own
/// cache and copied in right-aligned (<see cref="Place"/>); when the shared length would pass the capacity, or a new
/// prompt is longer than it, every row is moved so it ends at a new shared length (<see cref="Rebase"/>).
/// </remarks>
public sealed class SlotCache : IDisposable
{
    private readonly ComputeContext _ctx;
    private readonly int[] _mask;           // [Slots, Capacity]: 1 where a row's key is part of its sequence
    private readonly int[] _lengths;        // per row: its sequence's cached length (0 = free)
    private readonly DeviceTensor _scratch; // one row of one layer's keys, for moves within a row

    internal SlotCache(ComputeContext ctx, KvCache[] layers, int slots, int capacity)
    {
        _ctx = ctx;
        Layers = layers;
        Slots = slots;
        Capacity = capacity;
        _mask = new int[slots * capacity];
        _lengths = new int[slots];
        Mask = ctx.UploadInt(_mask, slots, capacity);
        _scratch = ctx.Allocate(capacity * layers[0].KvHeads * layers[0].HeadDim);
    }

    internal KvCache[] Layers { get; }
    internal DeviceTensor Mask { get; }

    public int Slots { get; }
    public int Capacity { get; }

    /// <summary>The shared column count: the next decode step writes column <see cref="Length"/> of every row.</summary>
    public int Length => Layers[0].Length;

    /// <summary>Cached positions of the sequence in <paramref name="slot"/> (0 when the slot is free).</summary>
    public int SequenceLength(int slot) => _lengths[slot];

    /// <summary>
    /// Copies row <paramref name="row"/> of a prefilled cache (its sequence in the last <paramref name="length"/>
    /// columns, as a left-padded prefill leaves it) into free slot <paramref name="slot"/>, ending at the shared length.
    /// </summary>
    public void Place(int slot, DecoderCache prefill, int row, int length)
    {
        if (_lengths[slot] != 0)
            throw new ModelException($"slot {slot} is in use");
        if (length <= 0 || length > prefill.Length)
            throw new ModelException($"a prefilled row holds {prefill.Length} positions, not {length}");
        if (length > Length) Rebase(length);
        int rowSize = Layers[0].KvHeads * Layers[0].HeadDim;
        for (int i = 0; i < Layers.Length; i++)
        {
            var source = prefill.Layers[i];
            int from = (row * source.Capacity + source.Length - length) * rowSize;
            int to = (slot * Capacity + Length - length) * rowSize;
            _ctx.Copy(source.Keys(0).Slice(from, length * rowSize, length * rowSize), Layers[i].Keys(0).Slice(to, length * rowSize, length * rowSize));
            _ctx.Copy(source.Values(0).Slice(from, length * rowSize, length * rowSize), Layers[i].Values(0).Slice(to, length * rowSize, length * rowSize));
        }
        Array.Clear(_mask, slot * Capacity, Capacity);
        Array.Fill(_mask, 1, slot * Capacity + Length - length, length);
        _lengths[slot] = length;
    }

    /// <summary>Frees a slot: its columns are masked out, so the next sequence placed there sees none of them.</summary>
    public void Release(int slot)
    {
        Array.Clear(_mask, slot * Capacity, Capacity);
        _lengths[slot] = 0;
    }

    /// <summary>
    /// Before a decode step: makes room for one more column (rebasing when the shared length reached the capacity)
    /// and marks it visible for the rows in <paramref name="active"/>; the step then appends there.
    /// </summary>
    internal void BeginStep(IReadOnlyList<int> active)
    {
        if (Length == Capacity)
        {
            int longest = _lengths.Max();
            if (longest >= Capacity)
                throw new ModelException($"a sequence filled the KV cache's {Capacity} positions");
            Rebase(longest);
        }
        foreach (int slot in active)
        {
            if (_lengths[slot] == 0) throw new ModelException($"slot {slot} holds no sequence");
            _mask[slot * Capacity + Length] = 1;
            _lengths[slot]++;
        }
        _ctx.CopyFrom(_mask, Mask);
    }

    /// <summary>
    /// Moves every row's sequence so it ends at column <paramref name="length"/> (≥ the longest sequence): the shared
    /// length shrinks back after sequences left, or grows for a prompt longer than it.
    /// </summary>
    private void Rebase(int length)
    {
        if (length > Capacity || length < _lengths.Max())
            throw new ModelException($"cannot rebase the KV cache to {length} columns (capacity {Capacity}, longest row {_lengths.Max()})");
        int rowSize = Layers[0].KvHeads * Layers[0].HeadDim, old = Length;
        for (int slot = 0; slot < Slots; slot++)
        {
            int n = _lengths[slot];
            if (n == 0 || old == length) continue;
            int from = (slot * Capacity + old - n) * rowSize, to = (slot * Capacity + length - n) * rowSize, size = n * rowSize;
            var scratch = _scratch.Slice(0, size, size);
            foreach (var layer in Layers)
                foreach (var t in new[] { layer.Keys(0), layer.Values(0) })
                {
                    _ctx.Copy(t.Slice(from, size, size), scratch);
                    _ctx.Copy(scratch, t.Slice(to, size, size));
                }
            Array.Clear(_mask, slot * Capacity, Capacity);
            Array.Fill(_mask, 1, slot * Capacity + length - n, n);
        }
        foreach (var layer in Layers)
        {
            layer.Reset();
            layer.Advance(length);
        }
    }

    public void Dispose()
    {
        foreach (var layer in Layers)
            layer.Dispose();
        Mask.Dispose();
        _scratch.Dispose();
    }
}
