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

    /// <summary>One output element: out[r, j] = widen(table[ids[r], j]).</summary>
    private static void GatherKernel(Index1D i, ArrayView<ushort> table, ArrayView<int> ids, ArrayView<float> output, int width)
    {
        int r = i / width, j = i - r * width;
        output[i] = GemmBf16Kernels.Widen(table[ids[r] * width + j]);
    }
}
