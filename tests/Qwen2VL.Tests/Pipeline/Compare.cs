using Xunit;

namespace Qwen2VL.Tests.Pipeline;

/// <summary>Element-wise comparison that names the tensor, its shape, the max difference and where it occurs.</summary>
internal static class Compare
{
    public static double MaxAbsDiff(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, out int at)
    {
        at = -1;
        var max = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            var d = Math.Abs((double)actual[i] - expected[i]);
            if (double.IsNaN(d) || d > max)
            {
                max = double.IsNaN(d) ? double.PositiveInfinity : d;
                at = i;
            }
        }
        return max;
    }

    public static void Close(string name, int[] shape, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol)
    {
        Assert.True(actual.Length == expected.Length, $"{name}: {actual.Length} values, expected {expected.Length}");
        var max = MaxAbsDiff(actual, expected, out var at);
        Assert.True(max <= atol,
            $"{name} [{string.Join(", ", shape)}]: max |diff| = {max:E3} at flat index {at} (got {actual[at]}, expected {expected[at]}), tolerance {atol:E1}");
    }
}
