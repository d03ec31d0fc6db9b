using System.Numerics;
using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>Element conversions from stored dtypes to float32. Every conversion is exact except I64/I32 beyond 2^24.</summary>
internal static class SafetensorsConvert
{
    static SafetensorsConvert()
    {
        // The format is little-endian; reinterpreting spans below assumes the host is too.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors reading needs a little-endian host");
    }

    public static void ToFloat32(SafetensorsDType dtype, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        switch (dtype)
        {
            case SafetensorsDType.F32:
                bytes.CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case SafetensorsDType.BF16:
                // bfloat16 is the top half of a float32: widening is a 16-bit shift.
                WidenBf16(MemoryMarshal.Cast<byte, ushort>(bytes), MemoryMarshal.Cast<float, uint>(destination));
                break;
            case SafetensorsDType.F16:
                ReadOnlySpan<Half> f16 = MemoryMarshal.Cast<byte, Half>(bytes);
                for (int i = 0; i < f16.Length; i++) destination[i] = (float)f16[i];
                break;
            case SafetensorsDType.I64:
                ReadOnlySpan<long> longs = MemoryMarshal.Cast<byte, long>(bytes);
                for (int i = 0; i < longs.Length; i++) destination[i] = longs[i];
                break;
            case SafetensorsDType.I32:
                ReadOnlySpan<int> ints = MemoryMarshal.Cast<byte, int>(bytes);
                for (int i = 0; i < ints.Length; i++) destination[i] = ints[i];
                break;
            case SafetensorsDType.U8:
                for (int i = 0; i < bytes.Length; i++) destination[i] = bytes[i];
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    /// <summary>bits[i] = bf16[i] &lt;&lt; 16, a vector at a time (checkpoints hold billions of these).</summary>
    private static void WidenBf16(ReadOnlySpan<ushort> bf16, Span<uint> bits)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref ushort source = ref MemoryMarshal.GetReference(bf16);
            ref uint target = ref MemoryMarshal.GetReference(bits);
            int width = Vector<ushort>.Count;
            for (; i <= bf16.Length - width; i += width)
            {
                Vector.Widen(Vector.LoadUnsafe(ref source, (nuint)i), out Vector<uint> low, out Vector<uint> high);
                Vector.ShiftLeft(low, 16).StoreUnsafe(ref target, (nuint)i);
                Vector.ShiftLeft(high, 16).StoreUnsafe(ref target, (nuint)(i + width / 2));
            }
        }
        for (; i < bf16.Length; i++) bits[i] = (uint)bf16[i] << 16;
    }
}
