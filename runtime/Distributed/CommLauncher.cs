using Qwen2VL.Runtime.Distributed.Mpi;
using Qwen2VL.Runtime.Distributed.Nccl;
using Qwen2VL.Runtime.Distributed.Threads;

namespace Qwen2VL.Runtime.Distributed;

/// <summary>The collective backends of <c>--comm</c>.</summary>
public enum CommBackend { Threads, Mpi, Nccl }

/// <summary>
/// Starts the ranks of a parallel run: <c>threads</c> runs them on threads of this process; <c>mpi</c> and
/// <c>nccl</c> take this process as one rank of the world <c>mpirun</c> started (<c>nccl</c> without mpirun: a
/// one-process world). The default is MPI under mpirun and threads otherwise. The world must hold exactly the ranks
/// the layout needs (tp·pp·dp), else one line says so.
/// </summary>
public static class CommLauncher
{
    /// <summary>Parses <c>--comm</c> (null: the default for how this process was started).</summary>
    public static CommBackend Parse(string? name) => name?.ToLowerInvariant() switch
    {
        null or "" => MpiCommunicator.UnderMpirun ? CommBackend.Mpi : CommBackend.Threads,
        "threads" => CommBackend.Threads,
        "mpi" => CommBackend.Mpi,
        "nccl" => CommBackend.Nccl,
        _ => throw new CommException($"--comm must be threads, mpi or nccl; got '{name}'"),
    };

    /// <summary>
    /// Runs <paramref name="body"/> on every rank of a world of <paramref name="ranks"/> (<paramref name="layout"/>
    /// names them in errors, e.g. "--dp 2"). Returns what rank 0 returned when rank 0 lives in this process, else
    /// default (a process of a larger MPI world that is not rank 0).
    /// </summary>
    public static T? Run<T>(CommBackend backend, int ranks, string layout, Func<ICommunicator, T> body)
    {
        if (ranks < 1) throw new CommException($"{layout} asks for {ranks} ranks");
        switch (backend)
        {
            case CommBackend.Threads:
                if (MpiCommunicator.UnderMpirun && MpiWorldSize() > 1)
                    throw new CommException($"--comm threads runs every rank in this process; start it without mpirun (or with -np 1), or use --comm mpi");
                return ThreadWorld.Run(ranks, body)[0];
            case CommBackend.Mpi:
            {
                var world = MpiCommunicator.World();
                CheckSize(world.Size, ranks, layout);
                try
                {
                    T result = body(world);
                    return world.Rank == 0 ? result : default;
                }
                catch (Exception e) when (world.Size > 1)
                {
                    world.AbortAfter(e); // the other ranks may be waiting in a collective: end the whole job
                    throw;
                }
            }
            case CommBackend.Nccl:
            {
                ICommunicator? bootstrap = MpiCommunicator.UnderMpirun ? MpiCommunicator.World() : null;
                CheckSize(bootstrap?.Size ?? 1, ranks, layout);
                using var nccl = NcclCommunicator.Create(bootstrap);
                T result = body(nccl);
                return nccl.Rank == 0 ? result : default;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(backend));
        }
    }

    private static void CheckSize(int world, int ranks, string layout)
    {
        if (world != ranks)
            throw new CommException(MpiCommunicator.UnderMpirun
                ? $"mpirun started {world} processes but {layout} needs {ranks} ranks (tp·pp·dp): run mpirun -np {ranks}"
                : $"{layout} needs {ranks} ranks: start it with mpirun -np {ranks}, or use --comm threads");
    }

    public static int MpiWorldSize() =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? Environment.GetEnvironmentVariable("PMI_SIZE"), out int n) ? n : 1;
}
