using System.Runtime.InteropServices;

namespace Qwen2VL.Bench;

/// <summary>
/// oneDNN's bf16 matmul primitive through its C API (Debian's libdnnl2, 2.6), the kernel transformers' bf16 CPU path
/// uses — measured against <c>CpuBf16Gemm</c> by `bench -- bf16`. Descriptors are opaque blocks the library fills in
/// (their layout is not needed here, only an upper bound on their size).
/// </summary>
internal static unsafe class OneDnnMatmul
{
    private const string Library = "libdnnl.so.2";
    private const int Cpu = 1, InOrder = 1, DataBf16 = 2, DataF32 = 3;
    private const int ArgSrc = 1, ArgDst = 17, ArgWeights = 33, QueryImplInfo = 8;
    private const int MemoryDescBytes = 4096, OpDescBytes = 32768;

    [StructLayout(LayoutKind.Sequential)]
    private struct ExecArg { public int Arg; public nint Memory; }

    [StructLayout(LayoutKind.Sequential)]
    private struct Version { public int Major, Minor, Patch; public nint Hash; public uint CpuRuntime, GpuRuntime; }

    [DllImport(Library)] private static extern int dnnl_engine_create(out nint engine, int kind, nuint index);
    [DllImport(Library)] private static extern int dnnl_engine_destroy(nint engine);
    [DllImport(Library)] private static extern int dnnl_stream_create(out nint stream, nint engine, uint flags);
    [DllImport(Library)] private static extern int dnnl_stream_wait(nint stream);
    [DllImport(Library)] private static extern int dnnl_stream_destroy(nint stream);
    [DllImport(Library)] private static extern int dnnl_memory_desc_init_by_strides(void* md, int ndims, long* dims, int dataType, long* strides);
    [DllImport(Library)] private static extern int dnnl_matmul_desc_init(void* desc, void* src, void* weights, void* bias, void* dst);
    [DllImport(Library)] private static extern int dnnl_primitive_desc_create(out nint pd, void* opDesc, nint attr, nint engine, nint hint);
    [DllImport(Library)] private static extern int dnnl_primitive_desc_query(nint pd, int what, int index, void* result);
    [DllImport(Library)] private static extern int dnnl_primitive_desc_destroy(nint pd);
    [DllImport(Library)] private static extern int dnnl_primitive_create(out nint primitive, nint pd);
    [DllImport(Library)] private static extern int dnnl_primitive_destroy(nint primitive);
    [DllImport(Library)] private static extern int dnnl_primitive_execute(nint primitive, nint stream, int nargs, ExecArg* args);
    [DllImport(Library)] private static extern int dnnl_memory_create(out nint memory, void* md, nint engine, void* handle);
    [DllImport(Library)] private static extern int dnnl_memory_set_data_handle(nint memory, void* handle);
    [DllImport(Library)] private static extern int dnnl_memory_destroy(nint memory);
    [DllImport(Library)] private static extern Version* dnnl_version();

    private static void Check(int status, string call)
    {
        // dnnl_status_t: 3 is dnnl_unimplemented — no implementation of the primitive for this CPU and data types.
        if (status == 3) throw new NotSupportedException($"oneDNN has no implementation for {call} on this CPU (dnnl_unimplemented)");
        if (status != 0) throw new InvalidOperationException($"oneDNN {call} failed with status {status}");
    }

    /// <summary>A CPU engine and an in-order stream.</summary>
    public sealed class Engine : IDisposable
    {
        private readonly nint _engine, _stream;
        public string Version { get; }

        private Engine(nint engine, nint stream, string version) { _engine = engine; _stream = stream; Version = version; }

        /// <summary>The engine, or null with the reason (library missing, no CPU engine).</summary>
        public static Engine? TryCreate(out string why)
        {
            try
            {
                Version* v = dnnl_version();
                Check(dnnl_engine_create(out nint engine, Cpu, 0), "engine_create");
                Check(dnnl_stream_create(out nint stream, engine, InOrder), "stream_create");
                why = "";
                return new Engine(engine, stream, $"{v->Major}.{v->Minor}.{v->Patch}");
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or InvalidOperationException)
            {
                why = e is DllNotFoundException ? $"{Library} not found; install Debian's libdnnl2" : e.Message;
                return null;
            }
        }

        /// <summary>dst[m, n] (f32) = src[m, k] (bf16) · w[n, k]ᵀ (bf16, our Linear layout, read as a k×n matrix with strides 1, k).</summary>
        public Matmul Bf16Matmul(int m, int n, int k) => new(_engine, _stream, m, n, k);

        public void Dispose()
        {
            dnnl_stream_destroy(_stream);
            dnnl_engine_destroy(_engine);
        }
    }

    public sealed class Matmul : IDisposable
    {
        private readonly nint _stream, _pd, _primitive, _src, _weights, _dst;
        private readonly int _m, _n, _k;
        public string Implementation { get; }

        internal Matmul(nint engine, nint stream, int m, int n, int k)
        {
            _stream = stream; _m = m; _n = n; _k = k;
            byte* block = (byte*)NativeMemory.AllocZeroed(3 * MemoryDescBytes + OpDescBytes);
            try
            {
                void* srcMd = block, weightsMd = block + MemoryDescBytes, dstMd = block + 2 * MemoryDescBytes, op = block + 3 * MemoryDescBytes;
                long* dims = stackalloc long[12];
                long* strides = stackalloc long[12];
                dims[0] = m; dims[1] = k; strides[0] = k; strides[1] = 1;
                Check(dnnl_memory_desc_init_by_strides(srcMd, 2, dims, DataBf16, strides), "memory_desc_init (src)");
                dims[0] = k; dims[1] = n; strides[0] = 1; strides[1] = k;
                Check(dnnl_memory_desc_init_by_strides(weightsMd, 2, dims, DataBf16, strides), "memory_desc_init (weights)");
                dims[0] = m; dims[1] = n; strides[0] = n; strides[1] = 1;
                Check(dnnl_memory_desc_init_by_strides(dstMd, 2, dims, DataF32, strides), "memory_desc_init (dst)");
                Check(dnnl_matmul_desc_init(op, srcMd, weightsMd, null, dstMd), "matmul_desc_init");
                Check(dnnl_primitive_desc_create(out _pd, op, 0, engine, 0), "primitive_desc_create (bf16 matmul)");
                byte* info = null;
                Check(dnnl_primitive_desc_query(_pd, QueryImplInfo, 0, &info), "query impl");
                Implementation = Marshal.PtrToStringAnsi((nint)info) ?? "?";
                Check(dnnl_primitive_create(out _primitive, _pd), "primitive_create");
                Check(dnnl_memory_create(out _src, srcMd, engine, null), "memory_create");
                Check(dnnl_memory_create(out _weights, weightsMd, engine, null), "memory_create");
                Check(dnnl_memory_create(out _dst, dstMd, engine, null), "memory_create");
            }
            finally
            {
                NativeMemory.Free(block);
            }
        }

        public void Execute(ushort[] src, ushort[] weights, float[] dst)
        {
            if (src.Length < _m * _k || weights.Length < _n * _k || dst.Length < _m * _n)
                throw new ArgumentException("oneDNN matmul operands are smaller than its sizes");
            fixed (ushort* s = src) fixed (ushort* w = weights) fixed (float* d = dst)
            {
                Check(dnnl_memory_set_data_handle(_src, s), "set_data_handle");
                Check(dnnl_memory_set_data_handle(_weights, w), "set_data_handle");
                Check(dnnl_memory_set_data_handle(_dst, d), "set_data_handle");
                ExecArg* args = stackalloc ExecArg[3];
                args[0] = new ExecArg { Arg = ArgSrc, Memory = _src };
                args[1] = new ExecArg { Arg = ArgWeights, Memory = _weights };
                args[2] = new ExecArg { Arg = ArgDst, Memory = _dst };
                Check(dnnl_primitive_execute(_primitive, _stream, 3, args), "primitive_execute");
                Check(dnnl_stream_wait(_stream), "stream_wait");
            }
        }

        public void Dispose()
        {
            dnnl_memory_destroy(_src); dnnl_memory_destroy(_weights); dnnl_memory_destroy(_dst);
            dnnl_primitive_destroy(_primitive);
            dnnl_primitive_desc_destroy(_pd);
        }
    }
}
