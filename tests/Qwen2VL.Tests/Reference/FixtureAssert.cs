using Qwen2VL.Dsl;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Reference;

/// <summary>Comparisons against the golden tensors that report name, shape, max abs diff and where it occurs.</summary>
internal static class FixtureAssert
{
    /// <summary>
    /// max |expected − actual| over all elements, or only over [B, S, …] rows whose attention mask is 1 when
    /// <paramref name="mask"/> is given (values at padding positions are implementation-defined).
    /// </summary>
    public static double Close(string name, Tensor expected, Tensor actual, double atol, ITestOutputHelper? log = null, long[]? mask = null)
    {
        Assert.True(expected.Shape.AsSpan().SequenceEqual(actual.Shape),
            $"{name}: shape {Tensor.Format(actual.Shape)}, expected {Tensor.Format(expected.Shape)}");
        int rows = mask?.Length ?? 1, width = expected.Count / rows;
        double max = 0;
        int at = 0;
        for (int r = 0; r < rows; r++)
        {
            if (mask is not null && mask[r] != 1) continue;
            for (int i = r * width; i < (r + 1) * width; i++)
            {
                double d = Math.Abs(expected.Data[i] - actual.Data[i]);
                if (!(d <= max)) { max = d; at = i; }
            }
        }
        log?.WriteLine($"{name} {Tensor.Format(expected.Shape)}: max abs diff {max:E2}");
        Assert.True(max <= atol,
            $"{name} {Tensor.Format(expected.Shape)}: max abs diff {max:E3} at flat index {at} (expected {expected.Data[at]}, got {actual.Data[at]}), atol {atol:E1}");
        return max;
    }

    public static Tensor Slice(Tensor t, int index) => Ops.Select(t, 0, index);
}
