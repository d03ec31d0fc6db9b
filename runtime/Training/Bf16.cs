using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime.Training;

/// <summary>
/// Rounding float32 to bfloat16 (the upper 16 bits of a float32: sign, 8 exponent bits, 7 mantissa bits), returned
/// widened back to float32 — the values bf16 compute weights hold. Round to nearest, ties to even: add 0x7FFF plus the
/// lowest kept bit, then drop the low 16 bits; a carry into the exponent is correct rounding, and values past the
/// largest bf16 (3.3895e38) become ±∞. ±∞ and ±0 stay as they are; NaN stays NaN (quiet bit set, sign kept), where
/// plain truncation could turn a NaN whose payload lies only in the low bits into ∞.
/// </summary>
public static class Bf16
{
    /// <summary>The bf16 value nearest to <paramref name="x"/> (ties to even), as a float32. Used by both kernel forms.</summary>
    public static float Round(float x)
    {
        uint bits = Interop.FloatAsInt(x);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
            return Interop.IntAsFloat((bits | 0x0040_0000u) & 0xFFFF_0000u); // NaN: keep it a (quiet) NaN
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return Interop.IntAsFloat(bits & 0xFFFF_0000u);
    }

    /// <summary>destination[i] = Round(source[i]) for every element (equal lengths; the same tensor is allowed).</summary>
    public static void RoundInto(ComputeContext ctx, DeviceTensor source, DeviceTensor destination)
    {
        if (source.IsInt || destination.IsInt || source.Length != destination.Length)
            throw new ArgumentException($"bf16 rounding needs two float32 tensors of one length; got {source}, {destination}");
        if (source.Length == 0) return;
        if (ctx.IsCpu)
        {
            float[] s = source.HostArray, d = destination.HostArray;
            int so = source.Offset, dOffset = destination.Offset, n = source.Length;
            const int chunk = 1 << 16;
            Parallel.For(0, (n + chunk - 1) / chunk, c =>
            {
                int end = Math.Min(n, (c + 1) * chunk);
                for (int i = c * chunk; i < end; i++) d[dOffset + i] = Round(s[so + i]);
            });
            return;
        }
        var kernel = ctx.CachedKernel("bf16-round", typeof(float), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(RoundKernel));
        kernel(source.Length, source.View, destination.View);
    }

    /// <summary>The bf16 bit pattern nearest to <paramref name="x"/> (ties to even): the upper half of <see cref="Round"/>.</summary>
    public static ushort RoundBits(float x) => (ushort)(Interop.FloatAsInt(Round(x)) >> 16);

    /// <summary>
    /// destination[i] = RoundBits(source[i]): f32 values into a bf16 tensor of the same length (training's 16-bit compute
    /// weights). On the cpu device <paramref name="hostBits"/> is the destination's writable array (<see cref="ComputeContext.AllocateBf16"/>).
    /// </summary>
    public static void RoundIntoBits(ComputeContext ctx, DeviceTensor source, DeviceTensor destination, ushort[]? hostBits)
    {
        if (source.IsInt || source.IsBf16 || !destination.IsBf16 || source.Length != destination.Length)
            throw new ArgumentException($"bf16 rounding into bits needs an f32 source and a bf16 destination of one length; got {source}, {destination}");
        if (source.Length == 0) return;
        if (ctx.IsCpu)
        {
            ushort[] d = hostBits ?? throw new ArgumentException("the cpu destination's array is needed to write it", nameof(hostBits));
            float[] s = source.HostArray;
            int so = source.Offset, dOffset = destination.Offset, n = source.Length;
            const int chunk = 1 << 16;
            Parallel.For(0, (n + chunk - 1) / chunk, c =>
            {
                int end = Math.Min(n, (c + 1) * chunk);
                for (int i = c * chunk; i < end; i++) d[dOffset + i] = RoundBits(s[so + i]);
            });
            return;
        }
        var kernel = ctx.CachedKernel("bf16-round-bits", typeof(ushort), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>>(RoundBitsKernel));
        kernel(source.Length, source.View, destination.Bf16View);
    }

    private static void RoundBitsKernel(Index1D i, ArrayView<float> source, ArrayView<ushort> destination) => destination[i] = RoundBits(source[i]);

    private static void RoundKernel(Index1D i, ArrayView<float> source, ArrayView<float> destination) => destination[i] = Round(source[i]);
}
