using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Training.Kernels;

/// <summary>
/// bf16 compute weights: the float32 → bfloat16 rounding (ties to even, ±∞, NaN) against a reference written another
/// way (the two bf16 neighbours found in float64 arithmetic), in both kernel forms, and the fused AdamW step that keeps
/// f32 masters and writes their bf16 rounding into the compute weights.
/// </summary>
public class Bf16Tests
{
    /// <summary>Nearest bf16 by arithmetic: the neighbours ⌊x/ulp⌋·ulp and the next, the nearer, on a tie the even one.</summary>
    private static float Reference(float x)
    {
        if (float.IsNaN(x) || float.IsInfinity(x) || x == 0) return x;
        double a = Math.Abs((double)x);
        int exponent = Math.Max(Math.ILogB(a), -126);         // subnormals share the smallest exponent's spacing
        double ulp = Math.ScaleB(1.0, exponent - 7);          // 7 stored mantissa bits
        double k = Math.Floor(a / ulp), lower = k * ulp, upper = (k + 1) * ulp;
        double nearest = a - lower < upper - a ? lower
            : a - lower > upper - a ? upper
            : k % 2 == 0 ? lower : upper;
        if (nearest >= Math.ScaleB(1.0, 128)) nearest = double.PositiveInfinity; // past the largest bf16 (≈ 3.3895e38)
        return (float)(Math.Sign(x) * nearest);
    }

    private static float FromBits(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    /// <summary>Zeros, ties (even and odd kept bit, both signs), just off ties, subnormals, the overflow edge, ±∞, NaNs.</summary>
    private static float[] Specials() =>
    [
        0f, -0f, 1f, -1f, float.Epsilon, -float.Epsilon, float.MaxValue, -float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
        FromBits(0x3F80_8000), FromBits(0x3F81_8000), FromBits(0xBF80_8000), FromBits(0xBF81_8000), // ties: down to even, up to even
        FromBits(0x3F80_8001), FromBits(0x3F80_7FFF), FromBits(0x0000_8000), FromBits(0x0001_8000), FromBits(0x007F_FFFF),
        FromBits(0x7F7F_7FFF), FromBits(0x7F7F_8000), FromBits(0x7F7F_FFFF), FromBits(0x7F7F_0000), // largest finite bf16 and past it
        float.NaN, FromBits(0x7F80_0001), FromBits(0xFF80_0001), FromBits(0x7FC0_0000), FromBits(0x7F80_FFFF), // NaNs, some with low-bit payloads
        0.1f, -3.14159265f, 65504f, 1e-30f, 1e30f,
    ];

    [Fact]
    public void RoundingMatchesTheReferenceOnSpecialAndRandomValues()
    {
        var values = Specials().ToList();
        var random = new Random(123);
        for (int i = 0; i < 200_000; i++) values.Add(FromBits((uint)random.NextInt64(0, 1L << 32)));
        for (uint high = 0; high < 0x1_0000; high += 37) values.Add(FromBits((high << 16) | 0x8000)); // ties across all exponents
        foreach (float x in values)
        {
            float got = Bf16.Round(x), want = Reference(x);
            if (float.IsNaN(want))
            {
                Assert.True(float.IsNaN(got), $"NaN 0x{BitConverter.SingleToUInt32Bits(x):X8} became {got}");
                Assert.Equal(0u, BitConverter.SingleToUInt32Bits(got) & 0xFFFFu);
                continue;
            }
            Assert.True(BitConverter.SingleToUInt32Bits(got) == BitConverter.SingleToUInt32Bits(want),
                $"0x{BitConverter.SingleToUInt32Bits(x):X8} ({x:R}): got 0x{BitConverter.SingleToUInt32Bits(got):X8}, reference 0x{BitConverter.SingleToUInt32Bits(want):X8}");
        }
        Assert.Equal(1f, Bf16.Round(FromBits(0x3F80_8000)));                 // tie, kept bit even: down
        Assert.Equal(FromBits(0x3F82_0000), Bf16.Round(FromBits(0x3F81_8000))); // tie, kept bit odd: up to even
        Assert.Equal(float.PositiveInfinity, Bf16.Round(float.MaxValue));
        Assert.Equal(-0f, Bf16.Round(-0f));
        Assert.True(float.IsNegative(Bf16.Round(-0f)));
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void RoundingKernelMatchesTheScalarRounding(DeviceKind kind)
    {
        var random = new Random(5);
        var values = Specials().Concat(Enumerable.Range(0, 5000).Select(_ => FromBits((uint)random.NextInt64(0, 1L << 32)))).ToArray();
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor source = ctx.Upload(values, values.Length), destination = ctx.Allocate(values.Length);
        Bf16.RoundInto(ctx, source, destination);
        var got = ctx.Download(destination);
        for (int i = 0; i < values.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(got[i]) == BitConverter.SingleToUInt32Bits(Bf16.Round(values[i])),
                $"{kind} element {i}: 0x{BitConverter.SingleToUInt32Bits(values[i]):X8} → 0x{BitConverter.SingleToUInt32Bits(got[i]):X8}");
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void AdamWKeepsF32MastersAndWritesTheirBf16RoundingForCompute(DeviceKind kind)
    {
        using ComputeContext ctx = ComputeContext.Create(kind);
        ParameterSet Make(bool bf16)
        {
            var set = new ParameterSet(ctx);
            set.Add("a.weight", [40, 7]);
            set.Add("a.bias", [40], decay: false);
            set.Add("frozen.weight", [9, 7], trainable: false);
            set.Build(bf16, wide: name => name == "a.bias");
            return set;
        }
        using ParameterSet plain = Make(false), mixed = Make(true);
        Assert.False(plain.Bf16Compute);
        Assert.Null(plain.Bf16ComputeWeights);
        Assert.False(plain.ComputeWeight("a.weight").IsBf16);
        Assert.True(mixed.Bf16Compute);
        Assert.True(mixed.ComputeWeight("a.weight").IsBf16);
        Assert.True(mixed.ComputeWeight("frozen.weight").IsBf16);
        Assert.False(mixed.ComputeWeight("a.bias").IsBf16);
        // 16-bit compute weights: 2 bytes an element, plus 4 per element of the one wide parameter.
        Assert.Equal((4L * 383, 0L, 0L, 4L * 320, 8L * 320), plain.HeldBytes);
        Assert.Equal((4L * 383, 2L * 383, 4L * 40, 4L * 320, 8L * 320), mixed.HeldBytes);
        var random = new Random(8);
        float[] w = Enumerable.Range(0, plain.Length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        ctx.CopyFrom(w, plain.AllWeights);
        ctx.CopyFrom(w, mixed.AllWeights);
        mixed.RoundComputeWeights();
        AssertRounded(ctx, mixed, "start");
        var adamPlain = new AdamW(weightDecay: 0.1f);
        var adamMixed = new AdamW(weightDecay: 0.1f);
        for (int step = 0; step < 3; step++)
        {
            float[] g = Enumerable.Range(0, plain.TrainableEnd).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            ctx.CopyFrom(g, plain.AllGrads);
            ctx.CopyFrom(g, mixed.AllGrads);
            adamPlain.Update(ctx, plain, 1e-3f);
            adamMixed.Update(ctx, mixed, 1e-3f);
            // The masters follow exactly the f32 update; the compute weights are their rounding, frozen ones included.
            Assert.Equal(ctx.Download(plain.AllWeights), ctx.Download(mixed.AllWeights));
            AssertRounded(ctx, mixed, $"step {step + 1}");
        }
        var masters = ctx.Download(mixed.AllWeights);
        Assert.Contains(masters, x => Bf16.Round(x) != x); // the masters keep their f32 bits
    }

    private static void AssertRounded(ComputeContext ctx, ParameterSet set, string when)
    {
        var masters = ctx.Download(set.AllWeights);
        var compute = ctx.DownloadBf16(set.Bf16ComputeWeights!);
        for (int i = 0; i < masters.Length; i++)
            Assert.True(compute[i] == Bf16.RoundBits(masters[i]),
                $"{when}, element {i}: compute 0x{compute[i]:X4}, master {masters[i]:R}");
        var bias = ctx.Download(set.Weight("a.bias"));
        Assert.Equal(bias.Select(Bf16.Round).ToArray(), ctx.Download(set.ComputeWeight("a.bias")));
    }
}
