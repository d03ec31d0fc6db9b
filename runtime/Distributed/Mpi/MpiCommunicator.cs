namespace Qwen2VL.Runtime.Distributed.Mpi;

/// <summary>
/// One rank per process, started by <c>mpirun</c> (Open MPI through <see cref="MpiLibrary"/>). Reductions move bytes
/// and fold on the receiving rank in rank order, as the threads backend does, so both give the same bits:
/// reduce-scatter is an all-to-all of blocks followed by a local fold, all-reduce is reduce-scatter then all-gather
/// (each rank sends and receives about 2·(size−1)/size of the buffer, as a ring all-reduce does).
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private static MpiCommunicator? _world;
    private readonly MpiLibrary _mpi;
    private nint _comm;
    private readonly bool _isWorld;

    private MpiCommunicator(MpiLibrary mpi, nint comm, bool isWorld)
    {
        _mpi = mpi;
        _comm = comm;
        _isWorld = isWorld;
        int rank, size;
        mpi.Check(mpi.CommRank(comm, &rank), "MPI_Comm_rank");
        mpi.Check(mpi.CommSize(comm, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
    }

    /// <summary>True when this process was started by mpirun (Open MPI, or a PMIx/PMI launcher).</summary>
    public static bool UnderMpirun =>
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null
        || Environment.GetEnvironmentVariable("PMIX_RANK") is not null
        || Environment.GetEnvironmentVariable("PMI_RANK") is not null;

    /// <summary>
    /// MPI_COMM_WORLD of this process, initialising MPI on first use (thread level MULTIPLE when the library offers
    /// it: the gradient-bucket worker communicates beside the main thread, on its own duplicate). MPI is finalised
    /// when the process exits.
    /// </summary>
    public static MpiCommunicator World()
    {
        lock (typeof(MpiCommunicator))
        {
            if (_world is not null) return _world;
            var mpi = MpiLibrary.Load();
            int initialized;
            mpi.Check(mpi.Initialized(&initialized), "MPI_Initialized");
            if (initialized == 0)
            {
                int provided;
                mpi.Check(mpi.InitThread(null, 0, MpiLibrary.ThreadMultiple, &provided), "MPI_Init_thread");
                if (provided < MpiLibrary.ThreadSerialized)
                    throw new CommException($"{mpi.Path} offers thread level {provided}; the parallel runtime needs MPI_THREAD_SERIALIZED or better");
                ThreadLevel = provided;
                AppDomain.CurrentDomain.ProcessExit += (_, _) => FinalizeMpi(mpi);
            }
            return _world = new MpiCommunicator(mpi, mpi.CommWorld, isWorld: true);
        }
    }

    /// <summary>The thread level MPI_Init_thread granted (3: MULTIPLE).</summary>
    public static int ThreadLevel { get; private set; }

    private static void FinalizeMpi(MpiLibrary mpi)
    {
        int finalized;
        if (mpi.Finalized(&finalized) == MpiLibrary.Success && finalized == 0) mpi.Finalize();
    }

    public string Backend => "mpi";
    public int Rank { get; }
    public int Size { get; }
    public bool IsDeterministic => true;
    public bool TakesDeviceMemory => false;

    public void AllReduceSum(CommBuffer data)
    {
        int[] counts = ((ICommunicator)this).Blocks(data.Count);
        CommBuffer mine = Scratch(data.DType, counts[Rank]);
        ReduceScatterSum(data, mine, counts);
        AllGather(mine, data, counts);
    }

    public void ReduceScatterSum(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts)
    {
        int[] starts = CommChecks.Starts("ReduceScatterSum", counts, Size, send.Count);
        CheckBlock("ReduceScatterSum", receive, send, counts[Rank]);
        int e = send.ElementSize, mine = counts[Rank];
        // Everyone's copy of my block arrives in rank order, then folds in rank order.
        CommBuffer gathered = Scratch(send.DType, mine * Size);
        var sendCounts = new int[Size];
        var sendStarts = new int[Size];
        var receiveCounts = new int[Size];
        var receiveStarts = new int[Size];
        for (int r = 0; r < Size; r++)
        {
            sendCounts[r] = Bytes(counts[r], e);
            sendStarts[r] = Bytes(starts[r], e);
            receiveCounts[r] = Bytes(mine, e);
            receiveStarts[r] = Bytes((long)r * mine, e);
        }
        fixed (byte* s = send.Bytes)
        fixed (byte* g = gathered.Bytes)
        fixed (int* sc = sendCounts, ss = sendStarts, rc = receiveCounts, rs = receiveStarts)
            _mpi.Check(_mpi.Alltoallv(s, sc, ss, _mpi.Byte, g, rc, rs, _mpi.Byte, _comm), "MPI_Alltoallv");
        if (mine > 0) RankOrderSum.Fold(send.DType, Size, r => gathered.Slice(r * mine, mine), receive);
    }

    public void AllGather(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts)
    {
        int[] starts = CommChecks.Starts("AllGather", counts, Size, receive.Count);
        CheckBlock("AllGather", send, receive, counts[Rank]);
        // MPI forbids overlapping send and receive buffers (short of MPI_IN_PLACE): an in-place block is copied out first.
        if (send.SameStart(receive.Slice(starts[Rank], counts[Rank])) && send.Count > 0)
        {
            CommBuffer copy = Scratch(send.DType, send.Count);
            send.Bytes.CopyTo(copy.Bytes);
            send = copy;
        }
        int e = send.ElementSize;
        var byteCounts = counts.Select(c => Bytes(c, e)).ToArray();
        var byteStarts = starts.Select(s => Bytes(s, e)).ToArray();
        fixed (byte* s = send.Bytes)
        fixed (byte* d = receive.Bytes)
        fixed (int* c = byteCounts, st = byteStarts)
            _mpi.Check(_mpi.Allgatherv(s, byteCounts[Rank], _mpi.Byte, d, c, st, _mpi.Byte, _comm), "MPI_Allgatherv");
    }

    public void Broadcast(CommBuffer data, int root)
    {
        CommChecks.Peer(root, Size, "Broadcast root");
        fixed (byte* p = data.Bytes)
            _mpi.Check(_mpi.Bcast(p, Bytes(data.Count, data.ElementSize), _mpi.Byte, root, _comm), "MPI_Bcast");
    }

    public void Send(CommBuffer data, int peer, int tag)
    {
        CommChecks.Peer(peer, Size, "Send peer");
        fixed (byte* p = data.Bytes)
            _mpi.Check(_mpi.Send(p, Bytes(data.Count, data.ElementSize), _mpi.Byte, peer, tag, _comm), "MPI_Send");
    }

    public void Receive(CommBuffer data, int peer, int tag)
    {
        CommChecks.Peer(peer, Size, "Receive peer");
        fixed (byte* p = data.Bytes)
            _mpi.Check(_mpi.Recv(p, Bytes(data.Count, data.ElementSize), _mpi.Byte, peer, tag, _comm, null), "MPI_Recv");
    }

    public void SendReceive(CommBuffer send, int sendPeer, CommBuffer receive, int receivePeer, int tag)
    {
        CommChecks.Peer(sendPeer, Size, "SendReceive send peer");
        CommChecks.Peer(receivePeer, Size, "SendReceive receive peer");
        fixed (byte* s = send.Bytes)
        fixed (byte* r = receive.Bytes)
            _mpi.Check(_mpi.Sendrecv(s, Bytes(send.Count, send.ElementSize), _mpi.Byte, sendPeer, tag,
                r, Bytes(receive.Count, receive.ElementSize), _mpi.Byte, receivePeer, tag, _comm, null), "MPI_Sendrecv");
    }

    public void Barrier() => _mpi.Check(_mpi.Barrier(_comm), "MPI_Barrier");

    /// <summary>
    /// Ends every rank of the job after this one failed: prints the failure as one line and calls MPI_Abort, so the
    /// other ranks do not wait forever in their next collective (MPI_Finalize would wait for them).
    /// </summary>
    public void AbortAfter(Exception failure)
    {
        string message = string.Join(' ', failure.Message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries));
        Console.Out.Flush();
        Console.Error.WriteLine(failure is ModelException ? $"error: rank {Rank}: {message}" : $"error: rank {Rank}: {failure}");
        Console.Error.Flush();
        _mpi.Abort(_mpi.CommWorld, 2);
    }

    public ICommunicator? Split(int color, int key)
    {
        nint made;
        _mpi.Check(_mpi.CommSplit(_comm, color < 0 ? MpiLibrary.Undefined : color, key, &made), "MPI_Comm_split");
        return color < 0 ? null : new MpiCommunicator(_mpi, made, isWorld: false);
    }

    public ICommunicator Duplicate()
    {
        nint made;
        _mpi.Check(_mpi.CommDup(_comm, &made), "MPI_Comm_dup");
        return new MpiCommunicator(_mpi, made, isWorld: false);
    }

    /// <summary>Frees a split or duplicate; the world stays until the process exits (MPI is finalised then).</summary>
    public void Dispose()
    {
        if (_isWorld || _comm == 0) return;
        nint comm = _comm;
        _comm = 0;
        int finalized;
        if (_mpi.Finalized(&finalized) == MpiLibrary.Success && finalized == 0) _mpi.CommFree(&comm);
    }

    private void CheckBlock(string op, CommBuffer block, CommBuffer full, int count)
    {
        if (block.DType != full.DType) throw new CommException($"{op}: the block is {block}, the full buffer {full}");
        if (block.Count != count)
            throw new CommException($"{op}: rank {Rank} of {Size} owns {count} of {full.Count} elements, its block buffer holds {block.Count}");
    }

    /// <summary>A byte count for MPI's int arguments (one message is below 2 GiB).</summary>
    private static int Bytes(long elements, int elementSize)
    {
        long bytes = elements * elementSize;
        return bytes <= int.MaxValue ? (int)bytes : throw new CommException($"a message of {bytes} bytes exceeds MPI's int count; use smaller buckets");
    }

    private static CommBuffer Scratch(CommDType dtype, int count) => dtype switch
    {
        CommDType.F32 => CommBuffer.Of(new float[count]),
        CommDType.F64 => CommBuffer.Of(new double[count]),
        _ => CommBuffer.Of(new ushort[count], dtype),
    };
}
