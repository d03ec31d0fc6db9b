using ILGPU;
using ILGPU.Runtime;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public class KernelMathTests
{
    /// <summary>erf in double from the alternating Maclaurin series (|x| ≤ 3) and the erfc continued fraction beyond.</summary>
    private static double ErfReference(double x)
    {
        double ax = Math.Abs(x), result;
        if (ax <= 3)
        {
            // Maclaurin series: 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)); at |x| ≤ 3 terms peak near 1e3, so double keeps ~1e-13.
            double term = ax, sum = ax;
            for (int n = 1; n < 200 && Math.Abs(term) > 1e-30; n++)
            {
                term *= -ax * ax / n;
                sum += term / (2 * n + 1);
            }
            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
            double t = ax;
            for (int k = 300; k >= 1; k--) t = ax + k / 2.0 / t;
            result = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / t;
        }
        return x < 0 ? -result : result;
    }

    [Fact]
    public void ReferenceAgreesWithKnownValues()
    {
        // Tabulated values (Abramowitz & Stegun table 7.1).
        Assert.Equal(0.5204998778, ErfReference(0.5), 9);
        Assert.Equal(0.8427007929, ErfReference(1.0), 9);
        Assert.Equal(0.9953222650, ErfReference(2.0), 9);
        Assert.Equal(0.9999779095, ErfReference(3.0), 9);
        Assert.Equal(0.9999999846, ErfReference(4.0), 9);
    }

    [Fact]
    public void ErfIsWithin2e7OfDoubleEverywhere()
    {
        double worst = 0, worstX = 0;
        for (int i = -120000; i <= 120000; i++)
        {
            float x = i * 5e-5f;
            double error = Math.Abs(KernelMath.Erf(x) - ErfReference(x));
            if (error > worst) { worst = error; worstX = x; }
        }
        Assert.True(worst <= 2e-7, $"max |erf error| {worst:E3} at x = {worstX}");
        Assert.Equal(1f, KernelMath.Erf(10f));
        Assert.Equal(-1f, KernelMath.Erf(float.NegativeInfinity));
        Assert.True(float.IsNaN(KernelMath.Erf(float.NaN)));
        Assert.Equal(0f, KernelMath.Erf(0f));
    }

    [Fact]
    public void GeluIsXTimesNormalCdf()
    {
        foreach (float x in new[] { -5f, -1.3f, -0.2f, 0f, 0.7f, 2.5f, 9f })
        {
            double expected = 0.5 * x * (1 + ErfReference(x / Math.Sqrt(2)));
            Assert.True(Math.Abs(KernelMath.Gelu(x) - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"gelu({x}) = {KernelMath.Gelu(x)}, expected {expected}");
        }
    }

    private static void ErfKernel(Index1D i, ArrayView<float> x, ArrayView<float> y) => y[i] = KernelMath.Erf(x[i]);

    [Fact]
    public void ErfCompilesInAnIlgpuKernelAndMatchesTheCpu()
    {
        float[] xs = Enumerable.Range(-50, 101).Select(i => i * 0.09f).ToArray();
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using DeviceTensor x = ctx.Upload(xs, xs.Length), y = ctx.Allocate(xs.Length);
        var kernel = ctx.Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ErfKernel);
        kernel(xs.Length, x.View, y.View);
        float[] ys = ctx.Download(y);
        for (int i = 0; i < xs.Length; i++)
            Assert.True(Math.Abs(ys[i] - ErfReference(xs[i])) <= 2e-7, $"x = {xs[i]}: kernel erf {ys[i]}, reference {ErfReference(xs[i])}");
    }
}
