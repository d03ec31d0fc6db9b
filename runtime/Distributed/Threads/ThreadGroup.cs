namespace Qwen2VL.Runtime.Distributed.Threads;

/// <summary>What one rank posted for the collective in progress.</summary>
internal readonly record struct Posted(string Op, CommDType DType, int Count, CommBuffer A, CommBuffer B, int Arg, int Arg2);

/// <summary>
/// The shared state of one in-process communicator: a slot per rank for the collective in progress, a barrier that
/// separates "everyone has posted" from "everyone is done reading", and a mailbox for point-to-point messages.
/// Every collective is: post → rendezvous → each rank does its own share (reads peers' buffers, writes only regions
/// no one else reads in this phase) → rendezvous.
/// </summary>
internal sealed class ThreadGroup
{
    private readonly Barrier _barrier;
    private readonly object _mail = new();
    private readonly Dictionary<(int From, int To, int Tag), Queue<PendingSend>> _queues = new();

    public ThreadWorld World { get; }

    /// <summary>World rank of each member, in this group's rank order.</summary>
    public int[] Members { get; }

    public int Size => Members.Length;
    public Posted[] Slots { get; }

    /// <summary>Groups made by a collective <see cref="ThreadCommunicator.Split"/>, handed from the leader to the others.</summary>
    public ThreadGroup?[] Made { get; }

    public ThreadGroup(ThreadWorld world, int[] members)
    {
        World = world;
        Members = members;
        Slots = new Posted[members.Length];
        Made = new ThreadGroup?[members.Length];
        _barrier = new Barrier(members.Length);
    }

    /// <summary>Waits until every member arrives; fails when a peer failed or the world's timeout passes.</summary>
    public void Rendezvous(int rank, string op)
    {
        bool arrived;
        try { arrived = _barrier.SignalAndWait(World.Timeout, World.Aborted); }
        catch (OperationCanceledException) { throw new OperationCanceledException($"rank {Members[rank]}: a peer failed during {op}"); }
        if (!arrived)
            throw new CommException($"{op} waited more than {World.Timeout.TotalSeconds:F0} s for the other ranks of a group of {Size} " +
                                    "(a deadlock, or ranks that call different collectives)");
    }

    /// <summary>A synchronous send: returns once the receiver has copied the data (MPI_Ssend semantics, so schedules that would deadlock do).</summary>
    public PendingSend Post(int from, int to, int tag, CommBuffer data)
    {
        var pending = new PendingSend(data);
        lock (_mail)
        {
            if (!_queues.TryGetValue((from, to, tag), out var queue)) _queues[(from, to, tag)] = queue = new Queue<PendingSend>();
            queue.Enqueue(pending);
            Monitor.PulseAll(_mail);
        }
        return pending;
    }

    public void WaitDelivered(PendingSend pending, string op)
    {
        lock (_mail) WaitFor(() => pending.Delivered, op);
    }

    /// <summary>Takes the oldest message from → to with <paramref name="tag"/>, copies it into <paramref name="data"/>, and releases the sender.</summary>
    public void Take(int from, int to, int tag, CommBuffer data, string op)
    {
        PendingSend pending;
        lock (_mail)
        {
            WaitFor(() => _queues.TryGetValue((from, to, tag), out var q) && q.Count > 0, op);
            pending = _queues[(from, to, tag)].Dequeue();
        }
        try
        {
            if (pending.Data.DType != data.DType || pending.Data.Count != data.Count)
                throw new CommException($"{op}: rank {from} sent {pending.Data}, rank {to} expects {data}");
            pending.Data.Bytes.CopyTo(data.Bytes);
        }
        finally
        {
            lock (_mail)
            {
                pending.Delivered = true;
                Monitor.PulseAll(_mail);
            }
        }
    }

    private void WaitFor(Func<bool> condition, string op)
    {
        DateTime deadline = DateTime.UtcNow + World.Timeout;
        while (!condition())
        {
            if (World.Aborted.IsCancellationRequested) throw new OperationCanceledException($"a peer failed during {op}");
            if (DateTime.UtcNow > deadline)
                throw new CommException($"{op} waited more than {World.Timeout.TotalSeconds:F0} s for its peer (a deadlock: both sides sending, or a missing receive)");
            Monitor.Wait(_mail, 50);
        }
    }
}

/// <summary>A posted send waiting for its receiver.</summary>
internal sealed class PendingSend(CommBuffer data)
{
    public CommBuffer Data { get; } = data;
    public bool Delivered { get; set; }
}
