using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

/// <summary>
/// The masked scatter of vision embeddings into the token embeddings (spec §7.1) and its gradient, on the device that
/// holds them, so no activation goes through the host. A row map [T] says, for each of the T token rows, which vision
/// row replaces it (j ≥ 0: row j of the vision tower's output, in order over the flattened ids, as transformers'
/// <c>masked_scatter</c> does) or none (−1). The map comes from the ids, which the host has anyway; it is the
/// image/video token mask of the inputs with the running count written in.
/// </summary>
public static class VisionScatter
{
    /// <summary>The row map of <paramref name="ids"/> for one vision token id, and how many rows it takes.</summary>
    public static int RowMap(ReadOnlySpan<long> ids, long tokenId, Span<int> map)
    {
        int next = 0;
        for (int t = 0; t < ids.Length; t++)
            map[t] = ids[t] == tokenId ? next++ : -1;
        return next;
    }

    /// <summary>x[t] = rows[map[t]] for every token row t whose map entry is ≥ 0 (x [T, H], map [T], rows [N, H]).</summary>
    public static void Scatter(ComputeContext ctx, DeviceTensor x, DeviceTensor map, DeviceTensor rows)
    {
        int h = Check(x, map, rows);
        if (x.Length == 0 || rows.Length == 0) return;
        if (ctx.IsCpu)
        {
            float[] xa = x.HostArray, ra = rows.HostArray;
            var m = map.IntSpan;
            for (int t = 0; t < m.Length; t++)
                if (m[t] >= 0)
                    Array.Copy(ra, rows.Offset + m[t] * h, xa, x.Offset + t * h, h);
            return;
        }
        var kernel = ctx.CachedKernel("vision-scatter", typeof(VisionScatter), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(ScatterKernel));
        kernel(x.Length, x.View, map.IntView, rows.View, h);
    }

    /// <summary>
    /// The gradient of <see cref="Scatter"/>: dRows[map[t]] = dx[t] (a gather of the rows), and dx[t] = 0 there, since
    /// the scattered rows replaced the token embeddings whose gradient dx would otherwise become.
    /// </summary>
    public static void GatherAndClear(ComputeContext ctx, DeviceTensor dx, DeviceTensor map, DeviceTensor dRows)
    {
        int h = Check(dx, map, dRows);
        if (dx.Length == 0) return;
        if (ctx.IsCpu)
        {
            float[] da = dx.HostArray, ra = dRows.HostArray;
            var m = map.IntSpan;
            for (int t = 0; t < m.Length; t++)
                if (m[t] >= 0)
                {
                    Array.Copy(da, dx.Offset + t * h, ra, dRows.Offset + m[t] * h, h);
                    Array.Clear(da, dx.Offset + t * h, h);
                }
            return;
        }
        var kernel = ctx.CachedKernel("vision-gather-clear", typeof(VisionScatter), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(GatherClearKernel));
        kernel(dx.Length, dx.View, map.IntView, dRows.View, h);
    }

    /// <summary>dx[t] = 0 for every row whose id is <paramref name="id"/> (dx [T, H], ids [T] int32).</summary>
    public static void ClearRowsOf(ComputeContext ctx, DeviceTensor dx, DeviceTensor ids, int id)
    {
        if (dx.IsInt || !ids.IsInt || ids.Length == 0 || dx.Length % ids.Length != 0)
            throw new ArgumentException($"clearing rows needs float32 [T, H] rows and int32 [T] ids; got {dx}, {ids}");
        int h = dx.Length / ids.Length;
        if (dx.Length == 0) return;
        if (ctx.IsCpu)
        {
            var d = dx.Span;
            var ia = ids.IntSpan;
            for (int t = 0; t < ia.Length; t++)
                if (ia[t] == id) d.Slice(t * h, h).Clear();
            return;
        }
        var kernel = ctx.CachedKernel("clear-rows-of-id", typeof(VisionScatter), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int, int>(ClearKernel));
        kernel(dx.Length, dx.View, ids.IntView, id, h);
    }

    /// <summary>One thread per element of x: copies its element of the vision row that replaces its token row, if any.</summary>
    public static void ScatterKernel(Index1D i, ArrayView<float> x, ArrayView<int> map, ArrayView<float> rows, int h)
    {
        int j = map[i / h];
        if (j >= 0) x[i] = rows[j * h + i % h];
    }

    /// <summary>One thread per element of dx: moves its element into the vision row's gradient, if its row was replaced.</summary>
    public static void GatherClearKernel(Index1D i, ArrayView<float> dx, ArrayView<int> map, ArrayView<float> dRows, int h)
    {
        int j = map[i / h];
        if (j < 0) return;
        dRows[j * h + i % h] = dx[i];
        dx[i] = 0f;
    }

    /// <summary>One thread per element of dx: zero where its token is the given id.</summary>
    public static void ClearKernel(Index1D i, ArrayView<float> dx, ArrayView<int> ids, int id, int h)
    {
        if (ids[i / h] == id) dx[i] = 0f;
    }

    private static int Check(DeviceTensor x, DeviceTensor map, DeviceTensor rows)
    {
        if (x.IsInt || rows.IsInt || !map.IsInt || map.Length == 0 || x.Length % map.Length != 0)
            throw new ArgumentException($"a vision scatter needs float32 rows [T, H], an int32 map [T] and float32 vision rows [N, H]; got {x}, {map}, {rows}");
        int h = x.Length / map.Length;
        if (h == 0 || rows.Length % h != 0)
            throw new ArgumentException($"vision rows {rows} do not have the {h} columns of {x}");
        return h;
    }
}
