namespace Qwen2VL.Runtime.Distributed.Nccl;

/// <summary>
/// One GPU per process over NCCL. The communicator is bootstrapped as nccl-tests do: rank 0 makes the ncclUniqueId,
/// an MPI broadcast hands it to every rank (no bootstrap: a one-process world). Collectives run on NCCL's own CUDA
/// stream, so they can overlap the model's kernels; each call waits for its stream before returning, and the caller
/// synchronises its compute stream before handing over a buffer. Buffers are CUDA device memory. Sums follow NCCL's
/// ring/tree order: not bit-deterministic across sizes, so <see cref="IsDeterministic"/> is false. Uneven blocks are
/// grouped ncclReduce / ncclBroadcast calls (NCCL's reduce-scatter and all-gather take equal blocks only).
/// <para>Not run here: the machine this was written on has no GPU and no NCCL.</para>
/// </summary>
public sealed unsafe class NcclCommunicator : ICommunicator
{
    private readonly NcclLibrary _nccl;
    private nint _comm, _stream, _scratch;

    private NcclCommunicator(NcclLibrary nccl, nint comm, int rank, int size)
    {
        _nccl = nccl;
        _comm = comm;
        Rank = rank;
        Size = size;
        nint stream;
        NcclLibrary.CheckCuda(nccl.StreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate");
        _stream = stream;
        nint scratch;
        NcclLibrary.CheckCuda(nccl.MemAlloc(&scratch, 4), "cuMemAlloc");
        _scratch = scratch;
    }

    /// <summary>
    /// Collective over <paramref name="bootstrap"/> (every process of the MPI world; null: a world of this process
    /// alone). The calling thread must have the CUDA context of this rank's GPU current (the model's accelerator).
    /// </summary>
    public static NcclCommunicator Create(ICommunicator? bootstrap)
    {
        var nccl = NcclLibrary.Load();
        int rank = bootstrap?.Rank ?? 0, size = bootstrap?.Size ?? 1;
        NcclUniqueId id;
        if (rank == 0) nccl.Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        if (bootstrap is not null)
        {
            var bytes = new byte[128];
            if (rank == 0) new ReadOnlySpan<byte>(id.Bytes, 128).CopyTo(bytes);
            var asFloats = new float[32];
            Buffer.BlockCopy(bytes, 0, asFloats, 0, 128);
            bootstrap.Broadcast(CommBuffer.Of(asFloats), 0);
            Buffer.BlockCopy(asFloats, 0, bytes, 0, 128);
            bytes.CopyTo(new Span<byte>(id.Bytes, 128));
        }
        nint comm;
        nccl.Check(nccl.CommInitRank(&comm, size, id, rank), "ncclCommInitRank");
        return new NcclCommunicator(nccl, comm, rank, size);
    }

    public string Backend => "nccl";
    public int Rank { get; }
    public int Size { get; }
    public bool IsDeterministic => false;
    public bool TakesDeviceMemory => true;

    public void AllReduceSum(CommBuffer data)
    {
        _nccl.Check(_nccl.AllReduce(data.DevicePointer, data.DevicePointer, (nuint)data.Count, Type(data.DType), NcclLibrary.Sum, _comm, _stream), "ncclAllReduce");
        Wait();
    }

    public void ReduceScatterSum(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts)
    {
        int[] starts = CommChecks.Starts("ReduceScatterSum", counts, Size, send.Count);
        if (receive.Count != counts[Rank]) throw new CommException($"ReduceScatterSum: rank {Rank} owns {counts[Rank]} elements, its block buffer holds {receive.Count}");
        Group(() =>
        {
            for (int r = 0; r < Size; r++)
            {
                if (counts[r] == 0) continue;
                // Non-root ranks of ncclReduce ignore the receive pointer; their own send block stands in for it.
                nint recv = r == Rank ? receive.DevicePointer : send.Slice(starts[r], counts[r]).DevicePointer;
                _nccl.Check(_nccl.Reduce(send.Slice(starts[r], counts[r]).DevicePointer, recv, (nuint)counts[r], Type(send.DType), NcclLibrary.Sum, r, _comm, _stream), "ncclReduce");
            }
        });
        Wait();
    }

    public void AllGather(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts)
    {
        int[] starts = CommChecks.Starts("AllGather", counts, Size, receive.Count);
        if (send.Count != counts[Rank]) throw new CommException($"AllGather: rank {Rank} owns {counts[Rank]} elements, its block buffer holds {send.Count}");
        Group(() =>
        {
            for (int r = 0; r < Size; r++)
            {
                if (counts[r] == 0) continue;
                CommBuffer target = receive.Slice(starts[r], counts[r]);
                nint source = r == Rank ? send.DevicePointer : target.DevicePointer;
                _nccl.Check(_nccl.Broadcast(source, target.DevicePointer, (nuint)counts[r], Type(send.DType), r, _comm, _stream), "ncclBroadcast");
            }
        });
        Wait();
    }

    public void Broadcast(CommBuffer data, int root)
    {
        CommChecks.Peer(root, Size, "Broadcast root");
        _nccl.Check(_nccl.Broadcast(data.DevicePointer, data.DevicePointer, (nuint)data.Count, Type(data.DType), root, _comm, _stream), "ncclBroadcast");
        Wait();
    }

    public void Send(CommBuffer data, int peer, int tag)
    {
        CommChecks.Peer(peer, Size, "Send peer");
        _nccl.Check(_nccl.Send(data.DevicePointer, (nuint)data.Count, Type(data.DType), peer, _comm, _stream), "ncclSend");
        Wait();
    }

    public void Receive(CommBuffer data, int peer, int tag)
    {
        CommChecks.Peer(peer, Size, "Receive peer");
        _nccl.Check(_nccl.Recv(data.DevicePointer, (nuint)data.Count, Type(data.DType), peer, _comm, _stream), "ncclRecv");
        Wait();
    }

    public void SendReceive(CommBuffer send, int sendPeer, CommBuffer receive, int receivePeer, int tag)
    {
        CommChecks.Peer(sendPeer, Size, "SendReceive send peer");
        CommChecks.Peer(receivePeer, Size, "SendReceive receive peer");
        Group(() =>
        {
            _nccl.Check(_nccl.Send(send.DevicePointer, (nuint)send.Count, Type(send.DType), sendPeer, _comm, _stream), "ncclSend");
            _nccl.Check(_nccl.Recv(receive.DevicePointer, (nuint)receive.Count, Type(receive.DType), receivePeer, _comm, _stream), "ncclRecv");
        });
        Wait();
    }

    /// <summary>An all-reduce of one float: NCCL has no barrier of its own.</summary>
    public void Barrier()
    {
        _nccl.Check(_nccl.AllReduce(_scratch, _scratch, 1, NcclLibrary.Float32, NcclLibrary.Sum, _comm, _stream), "ncclAllReduce");
        Wait();
    }

    public ICommunicator? Split(int color, int key)
    {
        if (_nccl.CommSplitAddress == 0) throw new CommException("this NCCL has no ncclCommSplit (NCCL 2.18 or newer is needed for tensor/pipeline groups)");
        nint made;
        var split = (delegate* unmanaged<nint, int, int, nint*, nint, int>)_nccl.CommSplitAddress;
        _nccl.Check(split(_comm, color < 0 ? -1 /* NCCL_SPLIT_NOCOLOR */ : color, key, &made, 0), "ncclCommSplit");
        if (color < 0) return null;
        // NCCL orders the new group as MPI_Comm_split does: by (key, old rank) among equal colors.
        int rank, count;
        _nccl.Check(_nccl.CommUserRank(made, &rank), "ncclCommUserRank");
        _nccl.Check(_nccl.CommCount(made, &count), "ncclCommCount");
        return new NcclCommunicator(_nccl, made, rank, count);
    }

    public ICommunicator Duplicate() => Split(0, Rank)!;

    public void Dispose()
    {
        if (_comm != 0) _nccl.CommDestroy(_comm);
        if (_scratch != 0) _nccl.MemFree(_scratch);
        if (_stream != 0) _nccl.StreamDestroy(_stream);
        _comm = _stream = _scratch = 0;
    }

    private void Group(Action calls)
    {
        _nccl.Check(_nccl.GroupStart(), "ncclGroupStart");
        try { calls(); }
        finally { _nccl.Check(_nccl.GroupEnd(), "ncclGroupEnd"); }
    }

    private void Wait() => NcclLibrary.CheckCuda(_nccl.StreamSynchronize(_stream), "cuStreamSynchronize");

    private static int Type(CommDType dtype) => dtype switch
    {
        CommDType.F32 => NcclLibrary.Float32,
        CommDType.F64 => NcclLibrary.Float64,
        CommDType.F16 => NcclLibrary.Float16,
        CommDType.BF16 => NcclLibrary.Bfloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
