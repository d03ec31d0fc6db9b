using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

/// <summary>Tensor comparisons that report the shape, the max abs difference and where it occurs.</summary>
internal static class TensorAssert
{
    public static void Close(double[] expected, Tensor actual, double atol, params int[] shape)
    {
        Assert.Equal(shape, actual.Shape);
        Close(expected, actual.Data, atol);
    }

    public static void Close(double[] expected, double[] actual, double atol, string name = "tensor")
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        int at = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(expected[i] - actual[i]);
            if (!(d <= max)) { max = d; at = i; }
        }
        Assert.True(max <= atol,
            $"{name}: max abs diff {max:E3} at flat index {at} (expected {expected[Math.Max(at, 0)]}, got {actual[Math.Max(at, 0)]}), atol {atol:E1}");
    }

    /// <summary>Deterministic pseudo-random data in [-1, 1).</summary>
    public static Tensor Random(int seed, params int[] shape)
    {
        var rng = new Random(seed);
        var data = new double[Tensor.Product(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = rng.NextDouble() * 2 - 1;
        return new Tensor(shape, data);
    }
}
