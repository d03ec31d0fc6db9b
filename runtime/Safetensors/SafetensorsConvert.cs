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
                ReadOnlySpan<ushort> bf16 = MemoryMarshal.Cast<byte, ushort>(bytes);
                Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination);
                for (int i = 0; i < bf16.Length; i++) bits[i] = (uint)bf16[i] << 16;
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
}
