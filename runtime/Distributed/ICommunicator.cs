namespace Qwen2VL.Runtime.Distributed;

/// <summary>
/// A group of ranks that exchange data: the one interface every parallel layout is written against, with three
/// backends (<see cref="Threads.ThreadCommunicator"/>, <see cref="Mpi.MpiCommunicator"/>, <see cref="Nccl.NcclCommunicator"/>).
/// <para>Every rank of the group must call the same collectives in the same order with matching counts and dtypes
/// (as in MPI). A communicator may be used by one thread of a rank at a time; two threads of one rank that
/// communicate concurrently (the gradient-bucket worker and the main thread) use two communicators
/// (<see cref="Split"/> or <see cref="Duplicate"/>).</para>
/// <para>Block layout: <see cref="ReduceScatterSum"/> and <see cref="AllGather"/> split the full buffer by
/// <see cref="BlockPartition.Balanced"/>: rank r owns block r, the first (count mod size) blocks one element longer.</para>
/// <para>Sums: when <see cref="IsDeterministic"/>, element i of every sum is the left fold
/// ((x₀ + x₁) + x₂) + … over ranks in rank order, in float32 for F32 and the 16-bit types (rounded once at the end) and
/// float64 for F64 — the same bits on every rank, on every run, and on every deterministic backend
/// (<see cref="RankOrderSum"/>).</para>
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>"threads", "mpi" or "nccl".</summary>
    string Backend { get; }

    int Rank { get; }
    int Size { get; }

    /// <summary>True when sums are rank-order folds (threads always; MPI unless built with native reductions; NCCL never).</summary>
    bool IsDeterministic { get; }

    /// <summary>True when buffers must be CUDA device memory (NCCL); false for host memory.</summary>
    bool TakesDeviceMemory { get; }

    /// <summary>data ← Σ over ranks of data (in place).</summary>
    void AllReduceSum(CommBuffer data);

    /// <summary>receive (the full count) ← every rank's block, in rank order; send holds this rank's block (balanced blocks).</summary>
    void AllGather(CommBuffer send, CommBuffer receive) => AllGather(send, receive, Blocks(receive.Count));

    /// <summary>
    /// As above with explicit block sizes (MPI_Allgatherv): rank r contributes counts[r] elements, placed at
    /// counts[0] + … + counts[r−1] in receive. Send may be this rank's block of receive itself (in place).
    /// </summary>
    void AllGather(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts);

    /// <summary>receive (this rank's block) ← block <see cref="Rank"/> of Σ over ranks of send (the full count; balanced blocks).</summary>
    void ReduceScatterSum(CommBuffer send, CommBuffer receive) => ReduceScatterSum(send, receive, Blocks(send.Count));

    /// <summary>
    /// As above with explicit block sizes (MPI_Reduce_scatter): rank r receives the sum of the counts[r] elements at
    /// counts[0] + … + counts[r−1]. A rank whose count is 0 takes part and receives nothing.
    /// </summary>
    void ReduceScatterSum(CommBuffer send, CommBuffer receive, IReadOnlyList<int> counts);

    /// <summary>data on every rank ← data on <paramref name="root"/>.</summary>
    void Broadcast(CommBuffer data, int root);

    /// <summary>Blocking send to <paramref name="peer"/>; messages between two ranks with one tag arrive in order.</summary>
    void Send(CommBuffer data, int peer, int tag);

    /// <summary>Blocking receive of exactly data.Count elements from <paramref name="peer"/>.</summary>
    void Receive(CommBuffer data, int peer, int tag);

    /// <summary>A send and a receive posted together (MPI_Sendrecv): never deadlocks against a matching pair.</summary>
    void SendReceive(CommBuffer send, int sendPeer, CommBuffer receive, int receivePeer, int tag);

    void Barrier();

    /// <summary>
    /// Collective: the ranks that pass the same <paramref name="color"/> form a new communicator, ranked by
    /// (<paramref name="key"/>, old rank). A negative color takes no part and gets null.
    /// </summary>
    ICommunicator? Split(int color, int key);

    /// <summary>Collective: the same ranks in a new communicator whose traffic never mixes with this one's.</summary>
    ICommunicator Duplicate();

    /// <summary>The balanced block sizes of <paramref name="total"/> elements over this group.</summary>
    int[] Blocks(int total)
    {
        var blocks = BlockPartition.Balanced(total, Size);
        return Enumerable.Range(0, Size).Select(blocks.Count).ToArray();
    }
}

/// <summary>Checks shared by the backends.</summary>
internal static class CommChecks
{
    /// <summary>Start of each rank's block for explicit counts; checks they cover <paramref name="total"/>.</summary>
    public static int[] Starts(string op, IReadOnlyList<int> counts, int size, int total)
    {
        if (counts.Count != size) throw new CommException($"{op}: {counts.Count} block sizes for a group of {size}");
        var starts = new int[size];
        long sum = 0;
        for (int r = 0; r < size; r++)
        {
            if (counts[r] < 0) throw new CommException($"{op}: block {r} has a negative size {counts[r]}");
            starts[r] = (int)sum;
            sum += counts[r];
        }
        if (sum != total) throw new CommException($"{op}: blocks of {sum} elements in all for a buffer of {total}");
        return starts;
    }

    public static void Peer(int peer, int size, string what)
    {
        if (peer < 0 || peer >= size) throw new CommException($"{what} {peer} is not a rank of this group of {size}");
    }
}
