using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;

namespace Qwen2VL.Tests.Compiled;

/// <summary>One golden case read through the forward command's input reader, with its expected tensors at hand.</summary>
internal sealed class GoldenCase : IDisposable
{
    public GoldenCase(string name)
    {
        Name = name;
        Inputs = ForwardFiles.ReadInputs(FixturePaths.Case(name, "inputs.safetensors"));
        Expected = SafetensorsFile.Open(FixturePaths.Case(name, "expected.safetensors"));
    }

    public string Name { get; }
    public ForwardInputs Inputs { get; }
    public SafetensorsFile Expected { get; }
    public long[] Mask => Inputs.MaskOrOnes();

    /// <summary>Max |a − e| over the [B, S, width] rows where attention_mask is 1 (padding rows carry no meaning).</summary>
    public double MaskedMaxDiff(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, int width)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        var mask = Mask;
        for (int t = 0; t < mask.Length; t++)
        {
            if (mask[t] == 0) continue;
            for (int i = t * width; i < (t + 1) * width; i++)
            {
                double d = Math.Abs((double)actual[i] - expected[i]);
                if (!(d <= max)) max = double.IsNaN(d) ? double.PositiveInfinity : d;
            }
        }
        return max;
    }

    /// <summary><see cref="MaskedMaxDiff"/> over stacked [L, B, S, width] layers (hidden_states), the worst layer.</summary>
    public double MaskedMaxDiffLayers(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, int width)
    {
        Assert.Equal(expected.Length, actual.Length);
        int layer = Mask.Length * width;
        double max = 0;
        for (int at = 0; at < expected.Length; at += layer)
            max = Math.Max(max, MaskedMaxDiff(actual.Slice(at, layer), expected.Slice(at, layer), width));
        return max;
    }

    public static double MaxDiff(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        return Compare.MaxAbsDiff(actual, expected, out _);
    }

    public void Dispose() => Expected.Dispose();
}
