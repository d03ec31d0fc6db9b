using System.Collections.Concurrent;
using System.Diagnostics;
using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Runtime.Distributed.DataParallel;

/// <summary>
/// A contiguous range [Start, Start + Count) of the flat gradient buffer, reduced as one message. It may be reduced
/// once every module owning one of its parameters has finished its backward pass: <see cref="ReadyAt"/> is the
/// position of the last of those modules in the model's completion order.
/// </summary>
public sealed record GradientBucket(int Index, int Start, int Count, int ReadyAt);

/// <summary>
/// Data-parallel gradient reduction in buckets, overlapped with the backward pass. It is the gradient sink the model
/// writes into (the <see cref="ParameterSet"/>'s flat gradient buffer) and hears, through
/// <see cref="IGradientProgress"/>, each module whose gradients are final; a bucket whose modules are all done is
/// handed to a worker thread that reduces it on its own communicator (a <see cref="ICommunicator.Duplicate"/>) while
/// the main thread goes on with earlier layers. Buckets are reduced in one fixed order, the same on every rank (sorted
/// by <see cref="GradientBucket.ReadyAt"/>, then position), so ranks whose batches differ (one with an image, one
/// without, which skips the vision tower) still issue the same collectives in the same order.
/// <para>Plain DP all-reduces each bucket. ZeRO-1 (<see cref="Owners"/> set) reduce-scatters it instead: each rank
/// receives the summed gradient only of the part of the bucket inside its own block of the optimizer state.</para>
/// <para>Only the last micro-batch of an optimizer step reduces (<see cref="Arm"/>); earlier ones accumulate locally,
/// as DDP's no_sync does. <see cref="Finish"/> reduces what is left and waits for the worker.</para>
/// </summary>
public sealed class GradientBuckets : IGradientSink, IGradientProgress, IDisposable
{
    private readonly ComputeContext _ctx;
    private readonly ParameterSet _parameters;
    private readonly ICommunicator _comm;
    private readonly Dictionary<string, int> _completion;
    private readonly GradientBucket[] _order;
    private readonly int[]? _ownerStarts, _ownerCounts;
    private readonly Thread _worker;
    private readonly BlockingCollection<(GradientBucket Bucket, float[]? Staged)> _queue = new();
    private readonly List<(GradientBucket Bucket, float[] Staged)> _staged = new();
    private readonly object _gate = new();
    private int _next, _pending;
    private bool _armed;
    private Exception? _failure;
    private long _busyTicks;

    /// <param name="ctx">The model's device.</param>
    /// <param name="parameters">The flat parameter and gradient buffers (built).</param>
    /// <param name="comm">The data-parallel group; a duplicate is made for the worker (collective).</param>
    /// <param name="completionOrder">Module prefixes in the order the backward pass finishes them.</param>
    /// <param name="owners">ZeRO-1: each rank's block of [0, TrainableEnd) (start, count); null: plain all-reduce.</param>
    /// <param name="bucketElements">Target bucket size in elements (buckets end on parameter boundaries).</param>
    /// <param name="overlap">Reduce buckets during the backward pass (true) or all after it (false; for measuring).</param>
    public GradientBuckets(ComputeContext ctx, ParameterSet parameters, ICommunicator comm, IReadOnlyList<string> completionOrder,
        IReadOnlyList<(int Start, int Count)>? owners, int bucketElements, bool overlap)
    {
        if (bucketElements < 1) throw new ArgumentOutOfRangeException(nameof(bucketElements));
        _ctx = ctx;
        _parameters = parameters;
        _completion = completionOrder.Select((p, i) => (p, i)).ToDictionary(x => x.p, x => x.i, StringComparer.Ordinal);
        Overlap = overlap;
        if (owners is not null)
        {
            if (owners.Count != comm.Size) throw new ArgumentException($"{owners.Count} owner blocks for {comm.Size} ranks");
            _ownerStarts = owners.Select(o => o.Start).ToArray();
            _ownerCounts = owners.Select(o => o.Count).ToArray();
        }
        Buckets = Plan(parameters, completionOrder, bucketElements);
        _order = Buckets.OrderBy(b => b.ReadyAt).ThenBy(b => b.Start).ToArray();
        _comm = comm.Duplicate();
        _worker = new Thread(Work) { Name = $"gradient buckets (rank {comm.Rank})", IsBackground = true };
        _worker.Start();
    }

    /// <summary>The buckets in buffer order.</summary>
    public IReadOnlyList<GradientBucket> Buckets { get; }

    public bool Overlap { get; }

    /// <summary>ZeRO-1: true when this rank's block of the optimizer state is what each bucket's reduction delivers.</summary>
    public bool ReduceScatters => _ownerStarts is not null;

    /// <summary>Seconds the worker spent reducing, and seconds <see cref="Finish"/> waited for it, in the last step.</summary>
    public double CommunicationSeconds { get; private set; }
    public double ExposedSeconds { get; private set; }

    /// <summary>
    /// Splits the trainable range at parameter boundaries into buckets of at least <paramref name="bucketElements"/>
    /// (the last one of a run may be smaller). A parameter's module is the longest prefix of the completion order it
    /// starts with; one outside every prefix is final only at the end.
    /// </summary>
    public static GradientBucket[] Plan(ParameterSet parameters, IReadOnlyList<string> completionOrder, int bucketElements)
    {
        int ReadyAt(string name)
        {
            int best = -1, length = -1;
            for (int i = 0; i < completionOrder.Count; i++)
                if (name.StartsWith(completionOrder[i], StringComparison.Ordinal) && completionOrder[i].Length > length)
                    (best, length) = (i, completionOrder[i].Length);
            return best < 0 ? int.MaxValue : best;
        }
        var buckets = new List<GradientBucket>();
        int start = 0, count = 0, readyAt = -1;
        foreach (var p in parameters.Parameters.Where(p => p.Trainable).OrderBy(p => p.Offset))
        {
            count += p.Length;
            readyAt = Math.Max(readyAt, ReadyAt(p.Name));
            if (count >= bucketElements)
            {
                buckets.Add(new GradientBucket(buckets.Count, start, count, readyAt));
                start += count;
                count = 0;
                readyAt = -1;
            }
        }
        if (count > 0) buckets.Add(new GradientBucket(buckets.Count, start, count, readyAt));
        return buckets.ToArray();
    }

    public DeviceTensor? GradientOf(string name) => _parameters.IsTrainable(name) ? _parameters.Grad(name) : null;

    /// <summary>The next backward pass is the step's last: reduce buckets as their modules finish.</summary>
    public void Arm()
    {
        if (_armed) throw new InvalidOperationException("the gradient buckets are already armed");
        _armed = true;
        _next = 0;
        _busyTicks = 0;
    }

    public void ModuleDone(string prefix)
    {
        if (!_armed || !Overlap) return;
        if (!_completion.TryGetValue(prefix, out int position))
            throw new InvalidOperationException($"module '{prefix}' is not in the gradient completion order");
        while (_next < _order.Length && _order[_next].ReadyAt <= position) Fire(_order[_next++]);
    }

    /// <summary>Reduces every bucket not yet reduced, waits for the worker, and copies staged results back.</summary>
    public void Finish()
    {
        if (!_armed) throw new InvalidOperationException("Finish without Arm");
        var wait = Stopwatch.StartNew();
        while (_next < _order.Length) Fire(_order[_next++]);
        lock (_gate)
        {
            while (_pending > 0 && _failure is null) Monitor.Wait(_gate);
        }
        _armed = false;
        if (_failure is not null) throw new CommException($"gradient reduction failed: {_failure.Message}", _failure);
        foreach (var (bucket, staged) in _staged)
            _ctx.CopyFrom(staged, _parameters.AllGrads.Slice(bucket.Start, bucket.Count, bucket.Count));
        _staged.Clear();
        ExposedSeconds = wait.Elapsed.TotalSeconds;
        CommunicationSeconds = (double)Interlocked.Read(ref _busyTicks) / Stopwatch.Frequency;
    }

    /// <summary>Hands a bucket to the worker: host memory as it is on the CPU, staged through the host on a GPU for host backends.</summary>
    private void Fire(GradientBucket bucket)
    {
        float[]? staged = null;
        if (DeviceBuffers.NeedsStaging(_ctx, _comm))
        {
            staged = _ctx.Download(_parameters.AllGrads.Slice(bucket.Start, bucket.Count, bucket.Count));
            _staged.Add((bucket, staged));
        }
        lock (_gate) _pending++;
        _queue.Add((bucket, staged));
    }

    private void Work()
    {
        foreach (var (bucket, staged) in _queue.GetConsumingEnumerable())
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                if (_failure is null) Reduce(bucket, staged);
            }
            catch (Exception e)
            {
                lock (_gate) _failure ??= e;
            }
            Interlocked.Add(ref _busyTicks, Stopwatch.GetTimestamp() - started);
            lock (_gate)
            {
                _pending--;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void Reduce(GradientBucket bucket, float[]? staged)
    {
        CommBuffer data = staged is not null ? CommBuffer.Of(staged) : DeviceBuffers.Of(_ctx, _parameters.AllGrads.Slice(bucket.Start, bucket.Count, bucket.Count));
        if (_ownerStarts is null)
        {
            _comm.AllReduceSum(data);
            return;
        }
        // Each rank's share of this bucket: the overlap of the bucket with its block of the optimizer state.
        var counts = new int[_comm.Size];
        for (int r = 0; r < counts.Length; r++)
        {
            int from = Math.Max(bucket.Start, _ownerStarts[r]), to = Math.Min(bucket.Start + bucket.Count, _ownerStarts[r] + _ownerCounts![r]);
            counts[r] = Math.Max(0, to - from);
        }
        int mine = counts.Take(_comm.Rank).Sum();
        // In place: this rank's share is received where it sits in the bucket (the backends fold into a scratch first).
        _comm.ReduceScatterSum(data, data.Slice(mine, counts[_comm.Rank]), counts);
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        _worker.Join();
        _queue.Dispose();
        _comm.Dispose();
    }
}
