using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>Deterministic inputs and a comparison that reports where the largest difference is.</summary>
internal static class Reference
{
    public static float[] Random(int length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var data = new float[length];
        for (int i = 0; i < length; i++) data[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return data;
    }

    /// <summary>|actual − expected| ≤ tolerance · max(1, |expected|) everywhere; the message names the worst element.</summary>
    public static void AssertClose(string name, double[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        int worstIndex = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]) / Math.Max(1.0, Math.Abs(expected[i]));
            if (double.IsNaN(error) || error > worst)
            {
                worst = error;
                worstIndex = i;
                if (double.IsNaN(error)) break; // NaN is the worst possible; keep it
            }
        }
        Assert.True(worst <= tolerance,
            $"{name}: max scaled diff {worst:E3} at index {worstIndex} (expected {expected[worstIndex]}, got {actual[worstIndex]}), tolerance {tolerance:E1}");
    }
}
