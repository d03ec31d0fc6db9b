using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime.Distributed.Mpi;

/// <summary>
/// Open MPI's C API, bound at run time (no MPI is needed to build, or to run without <c>--comm mpi</c>). Open MPI's
/// handles are pointers to global objects (<c>MPI_COMM_WORLD</c> is <c>&amp;ompi_mpi_comm_world</c>, <c>MPI_BYTE</c>
/// is <c>&amp;ompi_mpi_byte</c>), so they come from the library's exports; MPICH's integer handles are a different
/// ABI and are refused by name. Every transfer moves bytes (<c>MPI_BYTE</c>): the sums are folded here, in rank
/// order (<see cref="RankOrderSum"/>), so they are deterministic and equal to the threads backend's bits.
/// </summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>Names tried in order: Debian's openmpi-bin/libopenmpi-dev ship libmpi.so.40 (Open MPI 3, 4 and 5).</summary>
    public static readonly string[] Names = ["libmpi.so.40", "libmpi.so", "libmpi.so.80"];

    public const int Success = 0, ThreadMultiple = 3, ThreadSerialized = 2, Undefined = -32766;

    private static MpiLibrary? _loaded;
    private static readonly object Gate = new();

    public string Path { get; }
    public nint CommWorld { get; }
    public nint Byte { get; }

    public readonly delegate* unmanaged<int*, int> Initialized, Finalized;
    public readonly delegate* unmanaged<int*, nint, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<nint, int*, int> CommRank, CommSize;
    public readonly delegate* unmanaged<nint, int, int, nint*, int> CommSplit;
    public readonly delegate* unmanaged<nint, nint*, int> CommDup;
    public readonly delegate* unmanaged<nint*, int> CommFree;
    public readonly delegate* unmanaged<nint, int> Barrier;
    public readonly delegate* unmanaged<void*, int, nint, int, nint, int> Bcast;
    public readonly delegate* unmanaged<void*, int, nint, int, int, nint, int> Send;
    public readonly delegate* unmanaged<void*, int, nint, int, int, nint, void*, int> Recv;
    public readonly delegate* unmanaged<void*, int, nint, int, int, void*, int, nint, int, int, nint, void*, int> Sendrecv;
    public readonly delegate* unmanaged<void*, int*, int*, nint, void*, int*, int*, nint, nint, int> Alltoallv;
    public readonly delegate* unmanaged<void*, int, nint, void*, int*, int*, nint, nint, int> Allgatherv;
    public readonly delegate* unmanaged<int, byte*, int*, int> ErrorString;
    public readonly delegate* unmanaged<nint, int, int> Abort;

    private MpiLibrary(string path, nint handle)
    {
        Path = path;
        nint Export(string name) =>
            NativeLibrary.TryGetExport(handle, name, out nint address) ? address
                : throw new CommException($"{path} has no symbol {name}: --comm mpi needs Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev), not MPICH");
        CommWorld = Export("ompi_mpi_comm_world");
        Byte = Export("ompi_mpi_byte");
        Initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        InitThread = (delegate* unmanaged<int*, nint, int, int*, int>)Export("MPI_Init_thread");
        Finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        CommSplit = (delegate* unmanaged<nint, int, int, nint*, int>)Export("MPI_Comm_split");
        CommDup = (delegate* unmanaged<nint, nint*, int>)Export("MPI_Comm_dup");
        CommFree = (delegate* unmanaged<nint*, int>)Export("MPI_Comm_free");
        Barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        Bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast");
        Send = (delegate* unmanaged<void*, int, nint, int, int, nint, int>)Export("MPI_Send");
        Recv = (delegate* unmanaged<void*, int, nint, int, int, nint, void*, int>)Export("MPI_Recv");
        Sendrecv = (delegate* unmanaged<void*, int, nint, int, int, void*, int, nint, int, int, nint, void*, int>)Export("MPI_Sendrecv");
        Alltoallv = (delegate* unmanaged<void*, int*, int*, nint, void*, int*, int*, nint, nint, int>)Export("MPI_Alltoallv");
        Allgatherv = (delegate* unmanaged<void*, int, nint, void*, int*, int*, nint, nint, int>)Export("MPI_Allgatherv");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");
        Abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
    }

    /// <summary>The library, loaded once per process; a missing one is one line naming what was tried.</summary>
    public static MpiLibrary Load()
    {
        lock (Gate)
        {
            if (_loaded is not null) return _loaded;
            foreach (string name in Names)
                if (NativeLibrary.TryLoad(name, out nint handle))
                    return _loaded = new MpiLibrary(name, handle);
            throw new CommException($"--comm mpi: no MPI library found (tried {string.Join(", ", Names)}); install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev)");
        }
    }

    /// <summary>Throws a one-line error for an MPI return code other than MPI_SUCCESS.</summary>
    public void Check(int code, string call)
    {
        if (code == Success) return;
        byte* text = stackalloc byte[512];
        int length = 0;
        string message = ErrorString(code, text, &length) == Success ? Marshal.PtrToStringAnsi((nint)text, length) : $"error {code}";
        throw new CommException($"{call} failed: {message}");
    }
}
