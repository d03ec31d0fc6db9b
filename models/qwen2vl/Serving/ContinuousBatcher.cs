using System.Threading.Channels;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Serving;

/// <summary>How many sequences decode together, how long each may grow, and how many may wait.</summary>
public sealed record BatcherOptions(int Slots = 8, int Capacity = 1024, int MaxQueue = 64);

/// <summary>
/// Where the batcher's thread spent its time so far (seconds of wall time, measured with a stopwatch around each
/// phase): prefilling admitted prompts (of which <see cref="Embed"/>: the vision tower and the token embeddings), the decode steps' model call, sampling and handing tokens out, and waiting
/// for work; <see cref="SlotSteps"/> counts the rows the decode steps computed, <see cref="TokenSteps"/> the rows that
/// belonged to a live sequence.
/// </summary>
public sealed record BatcherProfile(double Prefill, double Embed, double Decode, double Sample, double Idle, long Steps, long SlotSteps, long TokenSteps, int Prefills)
{
    /// <summary>What was spent between an earlier reading and this one.</summary>
    public BatcherProfile Since(BatcherProfile earlier) => new(Prefill - earlier.Prefill, Embed - earlier.Embed, Decode - earlier.Decode,
        Sample - earlier.Sample, Idle - earlier.Idle, Steps - earlier.Steps, SlotSteps - earlier.SlotSteps, TokenSteps - earlier.TokenSteps, Prefills - earlier.Prefills);
}

/// <summary>Why a sequence ended: an end-of-sequence id, its token budget, or its consumer stopped it.</summary>
public enum FinishReason
{
    Stop,
    Length,
    Cancelled,
}

/// <summary>One prompt (a single row, no padding) with its token budget and sampling.</summary>
public sealed record BatchRequest(ForwardInputs Prompt, int MaxNewTokens, SamplingOptions Sampling, bool IgnoreEos = false);

/// <summary>
/// A sequence in flight: its generated ids arrive on <see cref="Tokens"/> (end-of-sequence ids are not written),
/// <see cref="Completion"/> says why it ended (or fails with the model's error), and <see cref="Stop"/> ends it at
/// the next step boundary, freeing its slot (a matched stop string, a client that went away).
/// </summary>
public sealed class BatchSequence
{
    private readonly Channel<long> _tokens = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<FinishReason> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopRequested;

    internal BatchSequence(BatchRequest request)
    {
        Request = request;
        Sampler = new TokenSampler(request.Sampling);
        Seen = [.. request.Prompt.InputIds];
    }

    internal BatchRequest Request { get; }
    internal TokenSampler Sampler { get; }
    internal HashSet<long> Seen { get; }
    internal int Slot { get; set; } = -1;
    internal long NextPosition { get; set; }
    internal long LastToken { get; set; }
    internal int Generated { get; set; }

    public int PromptTokens => Request.Prompt.Seq;
    public ChannelReader<long> Tokens => _tokens.Reader;
    public Task<FinishReason> Completion => _done.Task;
    internal bool StopRequested => _stopRequested;

    /// <summary>The batcher to tell when a sequence still waiting in its queue is stopped.</summary>
    internal ContinuousBatcher? Owner { get; set; }

    /// <summary>
    /// Asks the batcher to end this sequence (its result is then Cancelled): at the next step boundary when it holds a
    /// slot, at once when it still waits in the queue, so a client that gives up does not keep a queue place.
    /// </summary>
    public void Stop()
    {
        _stopRequested = true;
        Owner?.Withdraw(this);
    }

    internal void Emit(long token) => _tokens.Writer.TryWrite(token);

    internal void Finish(FinishReason reason)
    {
        _tokens.Writer.TryComplete();
        _done.TrySetResult(reason);
    }

    internal void Fail(Exception e)
    {
        _tokens.Writer.TryComplete(e);
        _done.TrySetException(e);
    }
}

/// <summary>
/// Continuous batching on the compiled model (as in Orca / vLLM, at the granularity of decode steps): one thread owns
/// the model; at every step boundary it admits waiting prompts into free slots — prefilled together as one
/// left-padded batch, the vision tower running once on each new image — and then runs one decode step for all
/// sequences in flight (<see cref="Qwen2VLModel.DecodeSlots"/>). A sequence leaves when it emits an end id, reaches
/// its budget or is stopped, and its slot is free for the next prompt at the next boundary.
/// </summary>
public sealed class ContinuousBatcher : IDisposable
{
    private readonly Qwen2VLModel _model;
    private readonly IReadOnlyList<long> _stopIds;
    private readonly long _padId;
    private readonly SlotCache _cache;
    private readonly Queue<BatchSequence> _queue = new();
    private readonly BatchSequence?[] _slots;
    private readonly object _gate = new();
    private readonly Thread _thread;
    private bool _draining;
    private long _steps;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private long _waitingSince = -1;    // ticks when the thread began waiting for work, -1 while it works
    private long _embedTicks, _prefillTicks, _decodeTicks, _sampleTicks, _idleTicks, _slotSteps, _tokenSteps;
    private int _prefills;

    public ContinuousBatcher(Qwen2VLModel model, IReadOnlyList<long> stopIds, long padId, BatcherOptions options)
    {
        if (options.Slots < 1 || options.MaxQueue < 0 || options.Capacity < 2)
            throw new ModelException($"batcher options out of range: {options}");
        _model = model;
        _stopIds = stopIds;
        _padId = padId;
        Options = options;
        _cache = model.CreateSlotCache(options.Slots, options.Capacity);
        _slots = new BatchSequence?[options.Slots];
        _thread = new Thread(Loop) { IsBackground = true, Name = "qwen2vl-batcher" };
        _thread.Start();
    }

    public BatcherOptions Options { get; }

    /// <summary>Sequences waiting for a slot.</summary>
    public int Queued { get { lock (_gate) return _queue.Count; } }

    /// <summary>Sequences holding a slot.</summary>
    public int Active { get { lock (_gate) return _slots.Count(s => s is not null); } }

    /// <summary>Decode steps run so far (each advances every active sequence by one token).</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>The time the batcher's thread spent in each phase so far (read while it runs: approximate).</summary>
    public BatcherProfile Profile
    {
        get
        {
            double f = System.Diagnostics.Stopwatch.Frequency;
            long since = Volatile.Read(ref _waitingSince), idle = Volatile.Read(ref _idleTicks) + (since < 0 ? 0 : _clock.ElapsedTicks - since);
            return new(Volatile.Read(ref _prefillTicks) / f, Volatile.Read(ref _embedTicks) / f, Volatile.Read(ref _decodeTicks) / f, Volatile.Read(ref _sampleTicks) / f,
                idle / f, Steps, Volatile.Read(ref _slotSteps), Volatile.Read(ref _tokenSteps), Volatile.Read(ref _prefills));
        }
    }

    /// <summary>Why a request cannot be queued, or null when <see cref="TryEnqueue"/> would accept it now.</summary>
    public enum Refusal
    {
        None,
        QueueFull,
        Draining,
    }

    /// <summary>
    /// Queues a prompt; its sequence starts at the next step boundary with a free slot. Refuses (null) when
    /// <see cref="BatcherOptions.MaxQueue"/> prompts already wait or the batcher is draining.
    /// A prompt plus its budget must fit <see cref="BatcherOptions.Capacity"/> (a <see cref="ModelException"/> otherwise).
    /// </summary>
    public BatchSequence? TryEnqueue(BatchRequest request, out Refusal refusal)
    {
        if (request.MaxNewTokens < 1)
            throw new ModelException($"max tokens must be ≥ 1, got {request.MaxNewTokens}");
        if (request.Prompt.Batch != 1)
            throw new ModelException($"the batcher takes one prompt per request, got a batch of {request.Prompt.Batch}");
        if ((long)request.Prompt.Seq + request.MaxNewTokens > Options.Capacity)
            throw new ModelException($"the prompt's {request.Prompt.Seq} tokens plus max tokens {request.MaxNewTokens} exceed the context of {Options.Capacity} tokens");
        var sequence = new BatchSequence(request);
        lock (_gate)
        {
            if (_draining) { refusal = Refusal.Draining; return null; }
            int waiting = _queue.Count;
            int free = _slots.Count(s => s is null);
            if (waiting >= Options.MaxQueue + free) { refusal = Refusal.QueueFull; return null; }
            sequence.Owner = this;
            _queue.Enqueue(sequence);
            Monitor.Pulse(_gate);
        }
        refusal = Refusal.None;
        return sequence;
    }

    /// <summary>Takes a stopped sequence out of the queue if it is still there (not yet admitted), finishing it as Cancelled.</summary>
    internal void Withdraw(BatchSequence sequence)
    {
        lock (_gate)
        {
            if (!_queue.Contains(sequence)) return;
            var rest = _queue.Where(s => s != sequence).ToList();
            _queue.Clear();
            foreach (var s in rest) _queue.Enqueue(s);
            Monitor.PulseAll(_gate);
        }
        sequence.Finish(FinishReason.Cancelled);
    }

    /// <summary>Refuses new prompts and returns when every queued and active sequence has finished.</summary>
    public void Drain()
    {
        lock (_gate)
        {
            _draining = true;
            Monitor.PulseAll(_gate);
        }
        _thread.Join();
    }

    public void Dispose()
    {
        Drain();
        _cache.Dispose();
    }

    private void Loop()
    {
        while (true)
        {
            List<BatchSequence> admitted = [];
            lock (_gate)
            {
                while (true)
                {
                    ReleaseStopped();
                    int free = _slots.Count(s => s is null);
                    while (free > 0 && _queue.Count > 0)
                    {
                        var next = _queue.Dequeue();
                        if (next.StopRequested) { next.Finish(FinishReason.Cancelled); continue; }
                        admitted.Add(next);
                        free--;
                    }
                    if (admitted.Count > 0 || _slots.Any(s => s is not null)) break;
                    if (_draining && _queue.Count == 0) return;
                    long waitFrom = _clock.ElapsedTicks;
                    Volatile.Write(ref _waitingSince, waitFrom);
                    Monitor.Wait(_gate);
                    _idleTicks += _clock.ElapsedTicks - waitFrom;
                    Volatile.Write(ref _waitingSince, -1);
                }
            }
            try
            {
                if (admitted.Count > 0)
                {
                    long from = _clock.ElapsedTicks;
                    Prefill(admitted);
                    _prefillTicks += _clock.ElapsedTicks - from;
                    _prefills++;
                }
            }
            catch (Exception e)
            {
                foreach (var s in admitted)
                {
                    lock (_gate)
                        if (s.Slot >= 0 && _slots[s.Slot] == s) { _cache.Release(s.Slot); _slots[s.Slot] = null; }
                    s.Fail(e);
                }
            }
            try
            {
                DecodeStep();
            }
            catch (Exception e)
            {
                lock (_gate)
                    for (int slot = 0; slot < _slots.Length; slot++)
                        if (_slots[slot] is { } s) { _cache.Release(slot); _slots[slot] = null; s.Fail(e); }
            }
        }
    }

    /// <summary>Frees the slots of sequences whose consumer stopped them (called under the gate).</summary>
    private void ReleaseStopped()
    {
        for (int slot = 0; slot < _slots.Length; slot++)
            if (_slots[slot] is { StopRequested: true } s)
            {
                _cache.Release(slot);
                _slots[slot] = null;
                s.Finish(FinishReason.Cancelled);
            }
    }

    /// <summary>
    /// The new prompts as one left-padded batch (the processor's padding side for generation): the vision tower runs
    /// on all their images at once, the decoder fills a cache of their own, and each row is copied into a free slot.
    /// Each gets its first token from the prefill's last-position logits.
    /// </summary>
    private void Prefill(List<BatchSequence> admitted)
    {
        int k = admitted.Count, seq = admitted.Max(s => s.PromptTokens);
        var ids = new long[k * seq];
        var mask = new long[k * seq];
        for (int r = 0; r < k; r++)
        {
            var prompt = admitted[r].Request.Prompt;
            int pad = seq - prompt.Seq;
            Array.Fill(ids, _padId, r * seq, pad);
            Array.Copy(prompt.InputIds, 0, ids, r * seq + pad, prompt.Seq);
            Array.Fill(mask, 1L, r * seq + pad, prompt.Seq);
        }
        var inputs = new ForwardInputs(ids, k, seq, mask,
            Concat(admitted.Select(s => s.Request.Prompt.Images)), Concat(admitted.Select(s => s.Request.Prompt.Videos)));
        long from = _clock.ElapsedTicks;
        var start = _model.Embed(inputs);
        _embedTicks += _clock.ElapsedTicks - from;
        using var prefill = _model.CreateCache(k, seq);
        var logits = _model.DecodeWithCache(prefill, start.Embeddings, start.PositionIds, start.AttentionMask, seq);    // [k, V]
        int vocab = _model.Vocab;
        for (int r = 0; r < k; r++)
        {
            var s = admitted[r];
            int slot;
            lock (_gate) slot = Array.IndexOf(_slots, null);
            _cache.Place(slot, prefill, r, s.PromptTokens);
            s.Slot = slot;
            lock (_gate) _slots[slot] = s;
            s.NextPosition = RopeIndex.DecodePosition(seq, start.RopeDeltas[r]);
            Accept(s, s.Sampler.Next(logits.AsSpan(r * vocab, vocab), s.Seen));
        }
    }

    /// <summary>One decode step of every active sequence, each fed its last token at its own next position.</summary>
    private void DecodeStep()
    {
        List<int> active = [];
        lock (_gate)
        {
            ReleaseStopped();
            for (int slot = 0; slot < _slots.Length; slot++)
                if (_slots[slot] is not null) active.Add(slot);
        }
        if (active.Count == 0) return;
        int slots = _slots.Length;
        var tokens = Enumerable.Repeat(_padId, slots).ToArray();
        var positions = new long[3 * slots];
        foreach (int slot in active)
        {
            var s = _slots[slot]!;
            tokens[slot] = s.LastToken;
            for (int a = 0; a < 3; a++) positions[a * slots + slot] = s.NextPosition;
            s.NextPosition++;
        }
        long from = _clock.ElapsedTicks;
        var logits = _model.DecodeSlots(_cache, tokens, positions, active);
        long decoded = _clock.ElapsedTicks;
        Interlocked.Increment(ref _steps);
        _slotSteps += slots;
        _tokenSteps += active.Count;
        int vocab = _model.Vocab;
        foreach (int slot in active)
        {
            var s = _slots[slot]!;
            Accept(s, s.Sampler.Next(logits.AsSpan(slot * vocab, vocab), s.Seen));
        }
        _decodeTicks += decoded - from;
        _sampleTicks += _clock.ElapsedTicks - decoded;
    }

    /// <summary>Records a sampled token: an end id or the last of the budget finishes the sequence and frees its slot.</summary>
    private void Accept(BatchSequence s, long token)
    {
        s.Seen.Add(token);
        s.LastToken = token;
        s.Generated++;
        bool end = !s.Request.IgnoreEos && _stopIds.Contains(token);
        if (!end) s.Emit(token);
        if (!end && s.Generated < s.Request.MaxNewTokens) return;
        lock (_gate)
        {
            _cache.Release(s.Slot);
            _slots[s.Slot] = null;
        }
        s.Finish(end ? FinishReason.Stop : FinishReason.Length);
    }

    private static VisionBatch? Concat(IEnumerable<VisionBatch?> parts)
    {
        var list = parts.Where(p => p is not null).Select(p => p!).ToList();
        if (list.Count == 0) return null;
        if (list.Count == 1) return list[0];
        var pixels = new float[list.Sum(p => (long)p.PixelValues.Length)];
        long offset = 0;
        foreach (var p in list)
        {
            Array.Copy(p.PixelValues, 0, pixels, offset, p.PixelValues.Length);
            offset += p.PixelValues.Length;
        }
        return new VisionBatch(pixels, list.Sum(p => p.Rows), list[0].Columns, list.SelectMany(p => p.Grids).ToList());
    }
}
