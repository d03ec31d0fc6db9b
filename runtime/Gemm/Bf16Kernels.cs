using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Qwen2VL.Runtime;

/// <summary>
/// The register blocks of <see cref="CpuBf16Gemm"/>, once per vector width. x is a row of a reordered per block
/// (even-indexed elements, then odd-indexed); w is a bf16 weight row in its stored order; both run over kMain elements,
/// and the scalar tail [kMain, k) is added from the original row. See <see cref="CpuBf16Gemm"/> for the widening trick.
/// </summary>
internal static class Bf16Kernels
{
    private const uint HighHalf = 0xFFFF_0000u;

    /// <summary>A bf16 bit pattern as the f32 it denotes (exact: bf16 is the upper half of an f32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Widens a row of bf16 bit patterns into f32 (exact), eight at a time where AVX2 is there.</summary>
    public static void WidenRow(ReadOnlySpan<ushort> bits, Span<float> destination)
    {
        int i = 0;
        if (Avx2.IsSupported)
        {
            ref ushort source = ref MemoryMarshal.GetReference(bits);
            ref float target = ref MemoryMarshal.GetReference(destination);
            for (; i + 8 <= bits.Length; i += 8)
            {
                Vector128<ushort> halves = Vector128.LoadUnsafe(ref source, (nuint)i);
                Vector256<int> wide = Avx2.ConvertToVector256Int32(halves);
                Avx2.ShiftLeftLogical(wide, 16).AsSingle().StoreUnsafe(ref target, (nuint)i);
            }
        }
        for (; i < bits.Length; i++) destination[i] = Widen(bits[i]);
    }

    private static float Tail(ReadOnlySpan<float> a, ReadOnlySpan<ushort> w, int from)
    {
        float s = 0;
        for (int i = from; i < w.Length; i++) s += a[i] * Widen(w[i]);
        return s;
    }

    public static float Dot1(Bf16Simd simd, ReadOnlySpan<float> x, ReadOnlySpan<float> a, ReadOnlySpan<ushort> w, int kMain)
    {
        float s = simd switch
        {
            Bf16Simd.Vector512 => Dot1V512(x, w, kMain),
            Bf16Simd.Vector256 => Dot1V256(x, w, kMain),
            _ => 0f,
        };
        return s + Tail(a, w, kMain);
    }

    public static void Dot1x4(Bf16Simd simd, ReadOnlySpan<float> x, ReadOnlySpan<float> a,
        ReadOnlySpan<ushort> w0, ReadOnlySpan<ushort> w1, ReadOnlySpan<ushort> w2, ReadOnlySpan<ushort> w3, int kMain,
        out float s0, out float s1, out float s2, out float s3)
    {
        if (simd == Bf16Simd.Vector512) Dot1x4V512(x, w0, w1, w2, w3, kMain, out s0, out s1, out s2, out s3);
        else if (simd == Bf16Simd.Vector256) Dot1x4V256(x, w0, w1, w2, w3, kMain, out s0, out s1, out s2, out s3);
        else s0 = s1 = s2 = s3 = 0;
        s0 += Tail(a, w0, kMain); s1 += Tail(a, w1, kMain); s2 += Tail(a, w2, kMain); s3 += Tail(a, w3, kMain);
    }

    public static void Dot4x2(Bf16Simd simd, in Bf16Rows rows, ReadOnlySpan<ushort> w0, ReadOnlySpan<ushort> w1, int kMain, out Bf16Block4x2 s)
    {
        if (simd == Bf16Simd.Vector512) Dot4x2V512(rows, w0, w1, kMain, out s);
        else if (simd == Bf16Simd.Vector256) Dot4x2V256(rows, w0, w1, kMain, out s);
        else s = default;
        s.R0C0 += Tail(rows.A0, w0, kMain); s.R0C1 += Tail(rows.A0, w1, kMain);
        s.R1C0 += Tail(rows.A1, w0, kMain); s.R1C1 += Tail(rows.A1, w1, kMain);
        s.R2C0 += Tail(rows.A2, w0, kMain); s.R2C1 += Tail(rows.A2, w1, kMain);
        s.R3C0 += Tail(rows.A3, w0, kMain); s.R3C1 += Tail(rows.A3, w1, kMain);
    }

    /// <summary>
    /// Decode reads four adjacent weight rows (one contiguous run of 4k values, w0 first); while it is at element i
    /// of each, it asks for bytes [8i, 8i + 128) of the next four rows, so that run arrives exactly as this one ends.
    /// The hardware prefetcher alone left the GEMV at ~75% of the read bandwidth here. A prefetch never faults, so
    /// running past the end of the array is harmless; callers pin the weights, so the address is stable.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchNextBlock(ref ushort w0, int k, int i)
    {
        if (!Sse.IsSupported) return;
        byte* next = (byte*)Unsafe.AsPointer(ref w0) + 8L * k + 8L * i;
        Sse.Prefetch0(next);
        Sse.Prefetch0(next + 64);
    }

    // ---- 256-bit: 16 bf16 weights per load ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Load256(ref ushort w, int i) =>
        Vector256.LoadUnsafe(ref Unsafe.As<ushort, uint>(ref Unsafe.Add(ref w, i)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Even(Vector256<uint> v) => Vector256.ShiftLeft(v, 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Odd(Vector256<uint> v) => (v & Vector256.Create(HighHalf)).AsSingle();

    private static float Dot1V256(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w, int kMain)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref ushort q = ref MemoryMarshal.GetReference(w);
        Vector256<float> e = default, o = default;
        for (int i = 0; i < kMain; i += 16)
        {
            Vector256<uint> v = Load256(ref q, i);
            e = Vector256.FusedMultiplyAdd(Even(v), Vector256.LoadUnsafe(ref xr, (nuint)i), e);
            o = Vector256.FusedMultiplyAdd(Odd(v), Vector256.LoadUnsafe(ref xr, (nuint)(i + 8)), o);
        }
        return Vector256.Sum(e + o);
    }

    private static void Dot1x4V256(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w0, ReadOnlySpan<ushort> w1,
        ReadOnlySpan<ushort> w2, ReadOnlySpan<ushort> w3, int kMain, out float s0, out float s1, out float s2, out float s3)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref ushort q0 = ref MemoryMarshal.GetReference(w0), q1 = ref MemoryMarshal.GetReference(w1),
            q2 = ref MemoryMarshal.GetReference(w2), q3 = ref MemoryMarshal.GetReference(w3);
        Vector256<float> e0 = default, o0 = default, e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
        int k = w0.Length;
        for (int i = 0; i < kMain; i += 16)
        {
            PrefetchNextBlock(ref q0, k, i);
            Vector256<float> xe = Vector256.LoadUnsafe(ref xr, (nuint)i), xo = Vector256.LoadUnsafe(ref xr, (nuint)(i + 8));
            Vector256<uint> v = Load256(ref q0, i);
            e0 = Vector256.FusedMultiplyAdd(Even(v), xe, e0); o0 = Vector256.FusedMultiplyAdd(Odd(v), xo, o0);
            v = Load256(ref q1, i);
            e1 = Vector256.FusedMultiplyAdd(Even(v), xe, e1); o1 = Vector256.FusedMultiplyAdd(Odd(v), xo, o1);
            v = Load256(ref q2, i);
            e2 = Vector256.FusedMultiplyAdd(Even(v), xe, e2); o2 = Vector256.FusedMultiplyAdd(Odd(v), xo, o2);
            v = Load256(ref q3, i);
            e3 = Vector256.FusedMultiplyAdd(Even(v), xe, e3); o3 = Vector256.FusedMultiplyAdd(Odd(v), xo, o3);
        }
        s0 = Vector256.Sum(e0 + o0); s1 = Vector256.Sum(e1 + o1); s2 = Vector256.Sum(e2 + o2); s3 = Vector256.Sum(e3 + o3);
    }

    /// <summary>4 rows × 2 weight rows: per 16 weights, 2 weight loads and 8 activation loads feed 16 FMAs into 8 accumulators.</summary>
    private static void Dot4x2V256(in Bf16Rows rows, ReadOnlySpan<ushort> w0, ReadOnlySpan<ushort> w1, int kMain, out Bf16Block4x2 s)
    {
        ref float r0 = ref MemoryMarshal.GetReference(rows.P0), r1 = ref MemoryMarshal.GetReference(rows.P1),
            r2 = ref MemoryMarshal.GetReference(rows.P2), r3 = ref MemoryMarshal.GetReference(rows.P3);
        ref ushort q0 = ref MemoryMarshal.GetReference(w0), q1 = ref MemoryMarshal.GetReference(w1);
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int i = 0; i < kMain; i += 16)
        {
            Vector256<uint> v0 = Load256(ref q0, i), v1 = Load256(ref q1, i);
            Vector256<float> e0 = Even(v0), o0 = Odd(v0), e1 = Even(v1), o1 = Odd(v1);
            nuint lo = (nuint)i, hi = (nuint)(i + 8);
            Vector256<float> y = Vector256.LoadUnsafe(ref r0, lo);
            c00 = Vector256.FusedMultiplyAdd(y, e0, c00); c01 = Vector256.FusedMultiplyAdd(y, e1, c01);
            y = Vector256.LoadUnsafe(ref r0, hi);
            c00 = Vector256.FusedMultiplyAdd(y, o0, c00); c01 = Vector256.FusedMultiplyAdd(y, o1, c01);
            y = Vector256.LoadUnsafe(ref r1, lo);
            c10 = Vector256.FusedMultiplyAdd(y, e0, c10); c11 = Vector256.FusedMultiplyAdd(y, e1, c11);
            y = Vector256.LoadUnsafe(ref r1, hi);
            c10 = Vector256.FusedMultiplyAdd(y, o0, c10); c11 = Vector256.FusedMultiplyAdd(y, o1, c11);
            y = Vector256.LoadUnsafe(ref r2, lo);
            c20 = Vector256.FusedMultiplyAdd(y, e0, c20); c21 = Vector256.FusedMultiplyAdd(y, e1, c21);
            y = Vector256.LoadUnsafe(ref r2, hi);
            c20 = Vector256.FusedMultiplyAdd(y, o0, c20); c21 = Vector256.FusedMultiplyAdd(y, o1, c21);
            y = Vector256.LoadUnsafe(ref r3, lo);
            c30 = Vector256.FusedMultiplyAdd(y, e0, c30); c31 = Vector256.FusedMultiplyAdd(y, e1, c31);
            y = Vector256.LoadUnsafe(ref r3, hi);
            c30 = Vector256.FusedMultiplyAdd(y, o0, c30); c31 = Vector256.FusedMultiplyAdd(y, o1, c31);
        }
        s.R0C0 = Vector256.Sum(c00); s.R0C1 = Vector256.Sum(c01); s.R1C0 = Vector256.Sum(c10); s.R1C1 = Vector256.Sum(c11);
        s.R2C0 = Vector256.Sum(c20); s.R2C1 = Vector256.Sum(c21); s.R3C0 = Vector256.Sum(c30); s.R3C1 = Vector256.Sum(c31);
    }

    // ---- 512-bit: 32 bf16 weights per load ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> Load512(ref ushort w, int i) =>
        Vector512.LoadUnsafe(ref Unsafe.As<ushort, uint>(ref Unsafe.Add(ref w, i)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Even(Vector512<uint> v) => Vector512.ShiftLeft(v, 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Odd(Vector512<uint> v) => (v & Vector512.Create(HighHalf)).AsSingle();

    private static float Dot1V512(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w, int kMain)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref ushort q = ref MemoryMarshal.GetReference(w);
        Vector512<float> e = default, o = default;
        for (int i = 0; i < kMain; i += 32)
        {
            Vector512<uint> v = Load512(ref q, i);
            e = Vector512.FusedMultiplyAdd(Even(v), Vector512.LoadUnsafe(ref xr, (nuint)i), e);
            o = Vector512.FusedMultiplyAdd(Odd(v), Vector512.LoadUnsafe(ref xr, (nuint)(i + 16)), o);
        }
        return Vector512.Sum(e + o);
    }

    private static void Dot1x4V512(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w0, ReadOnlySpan<ushort> w1,
        ReadOnlySpan<ushort> w2, ReadOnlySpan<ushort> w3, int kMain, out float s0, out float s1, out float s2, out float s3)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref ushort q0 = ref MemoryMarshal.GetReference(w0), q1 = ref MemoryMarshal.GetReference(w1),
            q2 = ref MemoryMarshal.GetReference(w2), q3 = ref MemoryMarshal.GetReference(w3);
        Vector512<float> e0 = default, o0 = default, e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
        int k = w0.Length;
        for (int i = 0; i < kMain; i += 32)
        {
            PrefetchNextBlock(ref q0, k, i);
            PrefetchNextBlock(ref q0, k, i + 16);
            Vector512<float> xe = Vector512.LoadUnsafe(ref xr, (nuint)i), xo = Vector512.LoadUnsafe(ref xr, (nuint)(i + 16));
            Vector512<uint> v = Load512(ref q0, i);
            e0 = Vector512.FusedMultiplyAdd(Even(v), xe, e0); o0 = Vector512.FusedMultiplyAdd(Odd(v), xo, o0);
            v = Load512(ref q1, i);
            e1 = Vector512.FusedMultiplyAdd(Even(v), xe, e1); o1 = Vector512.FusedMultiplyAdd(Odd(v), xo, o1);
            v = Load512(ref q2, i);
            e2 = Vector512.FusedMultiplyAdd(Even(v), xe, e2); o2 = Vector512.FusedMultiplyAdd(Odd(v), xo, o2);
            v = Load512(ref q3, i);
            e3 = Vector512.FusedMultiplyAdd(Even(v), xe, e3); o3 = Vector512.FusedMultiplyAdd(Odd(v), xo, o3);
        }
        s0 = Vector512.Sum(e0 + o0); s1 = Vector512.Sum(e1 + o1); s2 = Vector512.Sum(e2 + o2); s3 = Vector512.Sum(e3 + o3);
    }

    private static void Dot4x2V512(in Bf16Rows rows, ReadOnlySpan<ushort> w0, ReadOnlySpan<ushort> w1, int kMain, out Bf16Block4x2 s)
    {
        ref float r0 = ref MemoryMarshal.GetReference(rows.P0), r1 = ref MemoryMarshal.GetReference(rows.P1),
            r2 = ref MemoryMarshal.GetReference(rows.P2), r3 = ref MemoryMarshal.GetReference(rows.P3);
        ref ushort q0 = ref MemoryMarshal.GetReference(w0), q1 = ref MemoryMarshal.GetReference(w1);
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int i = 0; i < kMain; i += 32)
        {
            Vector512<uint> v0 = Load512(ref q0, i), v1 = Load512(ref q1, i);
            Vector512<float> e0 = Even(v0), o0 = Odd(v0), e1 = Even(v1), o1 = Odd(v1);
            nuint lo = (nuint)i, hi = (nuint)(i + 16);
            Vector512<float> y = Vector512.LoadUnsafe(ref r0, lo);
            c00 = Vector512.FusedMultiplyAdd(y, e0, c00); c01 = Vector512.FusedMultiplyAdd(y, e1, c01);
            y = Vector512.LoadUnsafe(ref r0, hi);
            c00 = Vector512.FusedMultiplyAdd(y, o0, c00); c01 = Vector512.FusedMultiplyAdd(y, o1, c01);
            y = Vector512.LoadUnsafe(ref r1, lo);
            c10 = Vector512.FusedMultiplyAdd(y, e0, c10); c11 = Vector512.FusedMultiplyAdd(y, e1, c11);
            y = Vector512.LoadUnsafe(ref r1, hi);
            c10 = Vector512.FusedMultiplyAdd(y, o0, c10); c11 = Vector512.FusedMultiplyAdd(y, o1, c11);
            y = Vector512.LoadUnsafe(ref r2, lo);
            c20 = Vector512.FusedMultiplyAdd(y, e0, c20); c21 = Vector512.FusedMultiplyAdd(y, e1, c21);
            y = Vector512.LoadUnsafe(ref r2, hi);
            c20 = Vector512.FusedMultiplyAdd(y, o0, c20); c21 = Vector512.FusedMultiplyAdd(y, o1, c21);
            y = Vector512.LoadUnsafe(ref r3, lo);
            c30 = Vector512.FusedMultiplyAdd(y, e0, c30); c31 = Vector512.FusedMultiplyAdd(y, e1, c31);
            y = Vector512.LoadUnsafe(ref r3, hi);
            c30 = Vector512.FusedMultiplyAdd(y, o0, c30); c31 = Vector512.FusedMultiplyAdd(y, o1, c31);
        }
        s.R0C0 = Vector512.Sum(c00); s.R0C1 = Vector512.Sum(c01); s.R1C0 = Vector512.Sum(c10); s.R1C1 = Vector512.Sum(c11);
        s.R2C0 = Vector512.Sum(c20); s.R2C1 = Vector512.Sum(c21); s.R3C0 = Vector512.Sum(c30); s.R3C1 = Vector512.Sum(c31);
    }
}
