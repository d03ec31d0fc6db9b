using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

public sealed partial class ComputeContext
{
    /// <summary>
    /// Rows <paramref name="ids"/> of a bf16 table [rows, width] as f32 [ids.Length, width]: the token embedding of a
    /// bf16 checkpoint, gathered without widening the table (only the rows asked for are read, each widened exactly by
    /// a 16-bit shift as it is copied out). Any device: on the cpu the table is read in place, on an ILGPU device a
    /// kernel gathers on the device and only the rows come back.
    /// </summary>
    public float[] GatherBf16Rows(DeviceTensor table, ReadOnlySpan<int> ids)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!table.IsBf16 || table.Shape.Length != 2)
            throw new ArgumentException($"GatherBf16Rows needs a bf16 table [rows, width], got {table}");
        int rows = table.Shape[0], width = table.Shape[1];
        foreach (int id in ids)
            if ((uint)id >= (uint)rows)
                throw new ModelException($"token id {id} is outside the vocabulary of {rows}");
        var result = new float[(long)ids.Length * width];
        if (ids.Length == 0 || width == 0) return result;
        if (IsCpu)
        {
            ReadOnlySpan<ushort> bits = table.Bf16Memory.Span;
            for (int r = 0; r < ids.Length; r++)
            {
                ReadOnlySpan<ushort> row = bits.Slice(ids[r] * width, width);
                Span<float> target = result.AsSpan(r * width, width);
                for (int j = 0; j < width; j++) target[j] = Bf16Kernels.Widen(row[j]);
            }
            return result;
        }
        using DeviceTensor idsT = UploadInt(ids, ids.Length);
        using DeviceTensor output = Allocate(ids.Length, width);
        var gather = CachedKernel("gather-bf16-rows", typeof(void), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, int>(GatherKernel));
        gather(ids.Length * width, table.Bf16View, idsT.IntView, output.View, width);
        return Download(output);
    }

    /// <summary>One output element: out[r, j] = widen(table[ids[r], j]).</summary>
    private static void GatherKernel(Index1D i, ArrayView<ushort> table, ArrayView<int> ids, ArrayView<float> output, int width)
    {
        int r = i / width, j = i - r * width;
        output[i] = GemmBf16Kernels.Widen(table[ids[r] * width + j]);
    }
}
