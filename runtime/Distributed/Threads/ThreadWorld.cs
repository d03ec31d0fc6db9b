namespace Qwen2VL.Runtime.Distributed.Threads;

/// <summary>
/// In-process ranks: one thread per rank, all sharing one <see cref="ThreadGroup"/> as their world. Used by the tests
/// (every parallel layout runs on a CPU-only machine) and by one machine without MPI. When a rank throws, the others
/// are released from whatever collective they wait in, and <see cref="Run{T}"/> rethrows the first failure.
/// A rank that waits longer than <see cref="Timeout"/> for its peers (a deadlock, or ranks that call different
/// collectives) fails with a message naming the operation.
/// </summary>
public sealed class ThreadWorld
{
    private readonly CancellationTokenSource _abort = new();

    public int Size { get; }
    public TimeSpan Timeout { get; }

    private ThreadWorld(int size, TimeSpan timeout)
    {
        Size = size;
        Timeout = timeout;
    }

    internal CancellationToken Aborted => _abort.Token;

    /// <summary>Runs <paramref name="body"/> on <paramref name="size"/> threads, one per rank; returns each rank's result.</summary>
    public static T[] Run<T>(int size, Func<ICommunicator, T> body, TimeSpan? timeout = null)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), "a world needs at least one rank");
        var world = new ThreadWorld(size, timeout ?? TimeSpan.FromSeconds(120));
        var group = new ThreadGroup(world, Enumerable.Range(0, size).ToArray());
        var results = new T[size];
        var failures = new Exception?[size];
        var threads = new Thread[size];
        for (int r = 0; r < size; r++)
        {
            int rank = r;
            threads[r] = new Thread(() =>
            {
                using var comm = new ThreadCommunicator(group, rank);
                try { results[rank] = body(comm); }
                catch (Exception e)
                {
                    failures[rank] = e;
                    world._abort.Cancel();
                }
            }) { Name = $"rank {rank}", IsBackground = true };
            threads[r].Start();
        }
        foreach (var t in threads) t.Join();
        // The first failure that is not just "a peer failed" is the cause; report it with its rank.
        int cause = Array.FindIndex(failures, f => f is not null and not OperationCanceledException);
        if (cause < 0) cause = Array.FindIndex(failures, f => f is not null);
        if (cause >= 0)
        {
            Exception e = failures[cause]!;
            if (e is CommException) throw new CommException($"rank {cause}: {e.Message}", e);
            throw new AggregateException($"rank {cause} failed: {e.Message}", e);
        }
        return results;
    }

    /// <summary><see cref="Run{T}"/> for bodies without a result.</summary>
    public static void Run(int size, Action<ICommunicator> body, TimeSpan? timeout = null) =>
        Run(size, comm => { body(comm); return 0; }, timeout);
}
