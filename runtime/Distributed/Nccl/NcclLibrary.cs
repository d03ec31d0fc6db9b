using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime.Distributed.Nccl;

/// <summary>ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank receives (over MPI), as nccl-tests do.</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
internal unsafe struct NcclUniqueId
{
    public fixed byte Bytes[128];
}

/// <summary>
/// NCCL (<c>libnccl.so.2</c>) and the three CUDA driver calls its stream needs (<c>libcuda.so.1</c>), bound at run
/// time: nothing of either is needed to build or to run another backend. A missing library is one line.
/// </summary>
internal sealed unsafe class NcclLibrary
{
    public static readonly string[] Names = ["libnccl.so.2", "libnccl.so"];
    public static readonly string[] CudaNames = ["libcuda.so.1", "libcuda.so"];

    // ncclDataType_t and ncclRedOp_t values from nccl.h (stable since NCCL 2.0; bfloat16 since 2.10).
    public const int Float16 = 6, Float32 = 7, Float64 = 8, Bfloat16 = 9, Sum = 0;

    private static NcclLibrary? _loaded;
    private static readonly object Gate = new();

    public readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, int> CommInitRank;
    public readonly delegate* unmanaged<nint, int> CommDestroy;
    /// <summary>ncclCommSplit (NCCL 2.18+), 0 when this NCCL lacks it.</summary>
    public readonly nint CommSplitAddress;
    public readonly delegate* unmanaged<int, nint> GetErrorString;
    public readonly delegate* unmanaged<nint, int*, int> CommUserRank, CommCount;
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> AllReduce;
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, int, nint, nint, int> Reduce;
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> Broadcast;
    public readonly delegate* unmanaged<nint, nuint, int, int, nint, nint, int> Send, Recv;
    public readonly delegate* unmanaged<int> GroupStart, GroupEnd;
    public readonly delegate* unmanaged<nint*, uint, int> StreamCreate;
    public readonly delegate* unmanaged<nint, int> StreamSynchronize, StreamDestroy;
    public readonly delegate* unmanaged<nint*, nuint, int> MemAlloc;
    public readonly delegate* unmanaged<nint, int> MemFree;

    private NcclLibrary(string name, nint nccl, nint cuda)
    {
        nint Export(nint handle, string library, string symbol) =>
            NativeLibrary.TryGetExport(handle, symbol, out nint address) ? address
                : throw new CommException($"{library} has no symbol {symbol} (--comm nccl needs NCCL 2.10 or newer)");
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Export(nccl, name, "ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)Export(nccl, name, "ncclCommInitRank");
        CommDestroy = (delegate* unmanaged<nint, int>)Export(nccl, name, "ncclCommDestroy");
        CommSplitAddress = NativeLibrary.TryGetExport(nccl, "ncclCommSplit", out nint split) ? split : 0;
        GetErrorString = (delegate* unmanaged<int, nint>)Export(nccl, name, "ncclGetErrorString");
        CommUserRank = (delegate* unmanaged<nint, int*, int>)Export(nccl, name, "ncclCommUserRank");
        CommCount = (delegate* unmanaged<nint, int*, int>)Export(nccl, name, "ncclCommCount");
        AllReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Export(nccl, name, "ncclAllReduce");
        Reduce = (delegate* unmanaged<nint, nint, nuint, int, int, int, nint, nint, int>)Export(nccl, name, "ncclReduce");
        Broadcast = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Export(nccl, name, "ncclBroadcast");
        Send = (delegate* unmanaged<nint, nuint, int, int, nint, nint, int>)Export(nccl, name, "ncclSend");
        Recv = (delegate* unmanaged<nint, nuint, int, int, nint, nint, int>)Export(nccl, name, "ncclRecv");
        GroupStart = (delegate* unmanaged<int>)Export(nccl, name, "ncclGroupStart");
        GroupEnd = (delegate* unmanaged<int>)Export(nccl, name, "ncclGroupEnd");
        StreamCreate = (delegate* unmanaged<nint*, uint, int>)Export(cuda, "libcuda", "cuStreamCreate");
        StreamSynchronize = (delegate* unmanaged<nint, int>)Export(cuda, "libcuda", "cuStreamSynchronize");
        StreamDestroy = (delegate* unmanaged<nint, int>)Export(cuda, "libcuda", "cuStreamDestroy_v2");
        MemAlloc = (delegate* unmanaged<nint*, nuint, int>)Export(cuda, "libcuda", "cuMemAlloc_v2");
        MemFree = (delegate* unmanaged<nint, int>)Export(cuda, "libcuda", "cuMemFree_v2");
    }

    public static NcclLibrary Load()
    {
        lock (Gate)
        {
            if (_loaded is not null) return _loaded;
            nint cuda = 0;
            if (!CudaNames.Any(n => NativeLibrary.TryLoad(n, out cuda)))
                throw new CommException($"--comm nccl: no CUDA driver found (tried {string.Join(", ", CudaNames)}); NCCL needs NVIDIA GPUs");
            foreach (string name in Names)
                if (NativeLibrary.TryLoad(name, out nint nccl))
                    return _loaded = new NcclLibrary(name, nccl, cuda);
            throw new CommException($"--comm nccl: no NCCL library found (tried {string.Join(", ", Names)}); install NVIDIA's libnccl2 or use --comm mpi");
        }
    }

    public void Check(int code, string call)
    {
        if (code != 0) throw new CommException($"{call} failed: {Marshal.PtrToStringAnsi(GetErrorString(code)) ?? $"error {code}"}");
    }

    public static void CheckCuda(int code, string call)
    {
        if (code != 0) throw new CommException($"{call} failed: CUDA error {code}");
    }
}
