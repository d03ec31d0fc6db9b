namespace Qwen2VL.Runtime.Distributed.Threads;

/// <summary>
/// One rank of an in-process group (<see cref="ThreadWorld"/>). Sums are rank-order folds (<see cref="RankOrderSum"/>),
/// each rank folding its own block of the result, so they are bit-identical to the MPI backend's. Point-to-point sends
/// are synchronous: a send returns once the receiver has the data, so a schedule that could deadlock under MPI's
/// rendezvous protocol deadlocks here too (and fails after the world's timeout instead of passing by luck).
/// </summary>
public sealed class ThreadCommunicator : ICommunicator
{
    private readonly ThreadGroup _group;

    internal ThreadCommunicator(ThreadGroup group, int rank)
    {
        _group = group;
        Rank = rank;
    }

    public string Backend => "threads";
    public int Rank { get; }
    public int Size => _group.Size;
    public bool IsDeterministic => true;
    public bool TakesDeviceMemory => false;

    /// <summary>This rank's number in the whole in-process world (for messages).</summary>
    public int WorldRank => _group.Members[Rank];

    public void AllReduceSum(CommBuffer data)
    {
        Posted[] all = Begin(new Posted("AllReduceSum", data.DType, data.Count, data, default, 0, 0));
        var blocks = BlockPartition.Balanced(data.Count, Size);
        int start = blocks.Start(Rank), count = blocks.Count(Rank);
        if (count > 0)
        {
            // Fold block Rank of everyone's buffer into a scratch first, then write it back into every buffer: the other
            // ranks read and write only their own blocks meanwhile.
            var scratch = Scratch(data.DType, count);
            RankOrderSum.Fold(data.DType, Size, r => all[r].A.Slice(start, count), scratch);
            for (int r = 0; r < Size; r++) scratch.Bytes.CopyTo(all[r].A.Slice(start, count).Bytes);
        }
        End("AllReduceSum");
    }

    public void AllGather(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts)
    {
        int[] starts = CommChecks.Starts("AllGather", counts, Size, receive.Count);
        CheckBlock("AllGather", send, receive, counts[Rank]);
        Posted[] all = Begin(new Posted("AllGather", receive.DType, receive.Count, send, receive, 0, 0));
        for (int r = 0; r < Size; r++)
        {
            CommBuffer target = receive.Slice(starts[r], counts[r]);
            if (!all[r].A.SameStart(target)) all[r].A.Bytes.CopyTo(target.Bytes);
        }
        End("AllGather");
    }

    public void ReduceScatterSum(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts)
    {
        int[] starts = CommChecks.Starts("ReduceScatterSum", counts, Size, send.Count);
        CheckBlock("ReduceScatterSum", receive, send, counts[Rank]);
        Posted[] all = Begin(new Posted("ReduceScatterSum", send.DType, send.Count, send, receive, 0, 0));
        int start = starts[Rank], count = counts[Rank];
        if (count > 0) RankOrderSum.Fold(send.DType, Size, r => all[r].A.Slice(start, count), receive);
        End("ReduceScatterSum");
    }

    public void Broadcast(CommBuffer data, int root)
    {
        CheckPeer(root, "Broadcast root");
        Posted[] all = Begin(new Posted("Broadcast", data.DType, data.Count, data, default, root, 0));
        if (all.Any(p => p.Arg != root)) throw new CommException($"Broadcast: ranks name different roots ({string.Join(", ", all.Select(p => p.Arg))})");
        if (Rank != root) all[root].A.Bytes.CopyTo(data.Bytes);
        End("Broadcast");
    }

    public void Send(CommBuffer data, int peer, int tag)
    {
        CheckPeer(peer, "Send peer");
        string op = $"Send of {data} from rank {Rank} to {peer} (tag {tag})";
        _group.WaitDelivered(_group.Post(Rank, peer, tag, data), op);
    }

    public void Receive(CommBuffer data, int peer, int tag)
    {
        CheckPeer(peer, "Receive peer");
        _group.Take(peer, Rank, tag, data, $"Receive of {data} at rank {Rank} from {peer} (tag {tag})");
    }

    public void SendReceive(CommBuffer send, int sendPeer, CommBuffer receive, int receivePeer, int tag)
    {
        CheckPeer(sendPeer, "SendReceive send peer");
        CheckPeer(receivePeer, "SendReceive receive peer");
        string op = $"SendReceive at rank {Rank} (send {send} to {sendPeer}, receive {receive} from {receivePeer}, tag {tag})";
        PendingSend pending = _group.Post(Rank, sendPeer, tag, send);
        _group.Take(receivePeer, Rank, tag, receive, op);
        _group.WaitDelivered(pending, op);
    }

    public void Barrier()
    {
        Begin(new Posted("Barrier", CommDType.F32, 0, default, default, 0, 0));
        End("Barrier");
    }

    public ICommunicator? Split(int color, int key)
    {
        Posted[] all = Begin(new Posted("Split", CommDType.F32, 0, default, default, color, key));
        ThreadCommunicator? mine = null;
        if (color >= 0)
        {
            int[] members = Enumerable.Range(0, Size).Where(r => all[r].Arg == color)
                .OrderBy(r => all[r].Arg2).ThenBy(r => r).ToArray();
            // The first member makes the shared group; the others pick it up after the next rendezvous.
            if (members[0] == Rank) _group.Made[Rank] = new ThreadGroup(_group.World, members.Select(m => _group.Members[m]).ToArray());
            _group.Rendezvous(Rank, "Split");
            mine = new ThreadCommunicator(_group.Made[members[0]]!, Array.IndexOf(members, Rank));
        }
        else _group.Rendezvous(Rank, "Split");
        End("Split");
        return mine;
    }

    public ICommunicator Duplicate() => Split(0, Rank)!;

    public void Dispose() { }

    /// <summary>Posts this rank's call, waits for all, and checks that every rank called the same thing.</summary>
    private Posted[] Begin(Posted mine)
    {
        _group.Slots[Rank] = mine;
        _group.Rendezvous(Rank, mine.Op);
        Posted[] all = _group.Slots;
        foreach (Posted p in all)
        {
            if (p.Op != mine.Op || p.DType != mine.DType || p.Count != mine.Count)
                throw new CommException($"ranks called different collectives: {Describe(all)}");
        }
        return all;
    }

    private void End(string op) => _group.Rendezvous(Rank, op);

    private static string Describe(Posted[] all) =>
        string.Join("; ", all.Select((p, r) => $"rank {r}: {p.Op} {p.DType}[{p.Count}]"));

    private void CheckBlock(string op, CommBuffer block, CommBuffer full, int count)
    {
        if (block.DType != full.DType) throw new CommException($"{op}: the block is {block}, the full buffer {full}");
        if (block.Count != count)
            throw new CommException($"{op}: rank {Rank} of {Size} owns {count} of {full.Count} elements, its block buffer holds {block.Count}");
    }

    private void CheckPeer(int peer, string what) => CommChecks.Peer(peer, Size, what);

    private static CommBuffer Scratch(CommDType dtype, int count) => dtype switch
    {
        CommDType.F32 => CommBuffer.Of(new float[count]),
        CommDType.F64 => CommBuffer.Of(new double[count]),
        _ => CommBuffer.Of(new ushort[count], dtype),
    };
}
