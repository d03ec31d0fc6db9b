using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    /// <summary>
    /// Rows <paramref name="ids"/> of a bf16 table [rows, width] into the f32 tensor <paramref name="output"/>
    /// ([ids.Length · width] elements): the token embedding of a bf16 checkpoint, gathered without widening the table
    /// (only the rows asked for are read, each widened exactly by a 16-bit shift as it is copied). Any device: on the cpu
    /// the table is read in place, on an ILGPU device a kernel gathers on the device (only the ids are uploaded).
    /// </summary>
    public void GatherBf16Rows(DeviceTensor table, ReadOnlySpan<int> ids, DeviceTensor output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!table.IsBf16 || table.Shape.Length != 2)
            throw new ArgumentException($"GatherBf16Rows needs a bf16 table [rows, width], got {table}");
        int rows = table.Shape[0], width = table.Shape[1];
        if (output.IsInt || output.IsBf16 || output.Length != (long)ids.Length * width)
            throw new ArgumentException($"GatherBf16Rows of {ids.Length} rows of {width} needs an f32 output of {(long)ids.Length * width} elements, got {output}");
        foreach (int id in ids)
            if ((uint)id >= (uint)rows)
                throw new ModelException($"token id {id} is outside the vocabulary of {rows}");
        if (ids.Length == 0 || width == 0) return;
        if (IsCpu)
        {
            ReadOnlySpan<ushort> bits = table.Bf16Memory.Span;
            Span<float> target = output.Span;
            for (int r = 0; r < ids.Length; r++)
            {
                ReadOnlySpan<ushort> row = bits.Slice(ids[r] * width, width);
                Span<float> destination = target.Slice(r * width, width);
                for (int j = 0; j < width; j++) destination[j] = Bf16Kernels.Widen(row[j]);
            }
            return;
        }
        using DeviceTensor idsT = UploadInt(ids, ids.Length);
        var gather = CachedKernel("gather-bf16-rows", typeof(void), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, int>(GatherKernel));
        gather(ids.Length * width, table.Bf16View, idsT.IntView, output.View, width);
        Synchronize(); // the ids upload is freed on return
    }

    /// <summary>
    /// A zeroed, writable bf16 tensor [length] (training's 16-bit compute weights): on the cpu device over a new array,
    /// returned in <paramref name="host"/> for the writers; on an ILGPU device a 16-bit buffer (<paramref name="host"/> null).
    /// </summary>
    public DeviceTensor AllocateBf16(int length, out ushort[]? host)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), $"a tensor cannot have {length} elements");
        if (IsCpu)
        {
            host = new ushort[length];
            return WrapBf16(host, length);
        }
        host = null;
        Interlocked.Increment(ref _allocations);
        var buffer = Accelerator.Allocate1D<ushort>(Math.Max(length, 1));
        buffer.MemSetToZero();
        return new DeviceTensor(new DeviceStorage(buffer, length), Kind, 0, [length], isInt: false, owner: true);
    }

    /// <summary>The 16-bit patterns of a bf16 tensor, copied to the host.</summary>
    public ushort[] DownloadBf16(DeviceTensor tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!tensor.IsBf16) throw new ArgumentException($"DownloadBf16 needs a bf16 tensor, got {tensor}");
        if (IsCpu) return tensor.Bf16Memory.ToArray();
        var bits = new ushort[tensor.Length];
        tensor.Bf16View.CopyToCPU(bits);
        return bits;
    }

    /// <summary>
    /// The backward of <see cref="GatherBf16Rows"/>: grad[ids[r], :] += rows[r, :] for every r, in f32 (the gradient of a
    /// bf16 table is f32). Ids repeat, so on an ILGPU device the adds are atomic; on the cpu they run in row order.
    /// </summary>
    public void ScatterAddRows(DeviceTensor rows, DeviceTensor ids, DeviceTensor grad)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (grad.IsInt || grad.IsBf16 || grad.Shape.Length != 2)
            throw new ArgumentException($"ScatterAddRows needs an f32 gradient [rows, width], got {grad}");
        int vocab = grad.Shape[0], width = grad.Shape[1];
        if (!ids.IsInt || rows.IsInt || rows.IsBf16 || rows.Length != (long)ids.Length * width)
            throw new ArgumentException($"ScatterAddRows of {ids} needs f32 rows of {(long)ids.Length * width} elements, got {rows}");
        if (ids.Length == 0 || width == 0) return;
        if (IsCpu)
        {
            ReadOnlySpan<int> idSpan = ids.IntSpan;
            ReadOnlySpan<float> source = rows.Span;
            Span<float> target = grad.Span;
            for (int r = 0; r < idSpan.Length; r++)
            {
                if ((uint)idSpan[r] >= (uint)vocab) throw new ModelException($"token id {idSpan[r]} is outside the vocabulary of {vocab}");
                Span<float> row = target.Slice(idSpan[r] * width, width);
                System.Numerics.Tensors.TensorPrimitives.Add(row, source.Slice(r * width, width), row);
            }
            return;
        }
        var scatter = CachedKernel("scatter-add-rows", typeof(void), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>(ScatterAddKernel));
        scatter(ids.Length * width, rows.View, ids.IntView, grad.View, width, vocab);
    }

    /// <summary>One element: grad[ids[r], j] += rows[r, j] (ids clamped, as the generated embedding gradient does; the host checked them).</summary>
    private static void ScatterAddKernel(Index1D i, ArrayView<float> rows, ArrayView<int> ids, ArrayView<float> grad, int width, int vocab)
    {
        int r = i / width, j = i - r * width;
        int id = ILGPU.Algorithms.XMath.Clamp(ids[r], 0, vocab - 1);
        Atomic.Add(ref grad[id * width + j], rows[i]);
    }

    /// <summary>One output element: out[r, j] = widen(table[ids[r], j]).</summary>
    private static void GatherKernel(Index1D i, ArrayView<ushort> table, ArrayView<int> ids, ArrayView<float> output, int width)
    {
        int r = i / width, j = i - r * width;
        output[i] = GemmBf16Kernels.Widen(table[ids[r] * width + j]);
    }
}
