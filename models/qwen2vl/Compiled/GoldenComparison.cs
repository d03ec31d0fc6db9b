using Qwen2VL.Model.Generation;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>One line of a comparison with transformers: the tensor, its shape, the max |diff| (or the number of
/// differing integers), the tolerance and whether it holds.</summary>
public sealed record ComparisonRow(string Name, string Shape, double MaxDiff, double Tolerance, bool Exact)
{
    public bool Passed => Exact ? MaxDiff == 0 : MaxDiff <= Tolerance;
}

/// <summary>
/// Compares a forward pass (and generation) with a golden expected.safetensors, using the fixture README's
/// tolerances: integers exactly; vision embeddings, hidden states and logits within 1e-4 (hidden states and
/// logits only where attention_mask is 1: padding rows carry no meaning); the loss within 1e-5.
/// </summary>
public static class GoldenComparison
{
    public const double FloatTolerance = 1e-4, LossTolerance = 1e-5;

    public static List<ComparisonRow> Compare(ForwardOutput output, GenerationOutput? generated, long[] mask, SafetensorsFile expected)
    {
        int b = output.Batch, s = output.Seq, h = output.Hidden;
        var rows = new List<ComparisonRow>
        {
            Ints("position_ids", $"[3, {b}, {s}]", output.PositionIds, expected.ReadInt64("position_ids")),
            Ints("rope_deltas", $"[{b}, 1]", output.RopeDeltas, expected.ReadInt64("rope_deltas")),
        };
        if (output.ImageEmbeds is { } images)
            rows.Add(Floats("image_embeds", $"[{images.Length / h}, {h}]", images, expected.ReadFloat32("image_embeds"), null, h));
        if (output.VideoEmbeds is { } videos)
            rows.Add(Floats("video_embeds", $"[{videos.Length / h}, {h}]", videos, expected.ReadFloat32("video_embeds"), null, h));
        var hidden = expected.ReadFloat32("hidden_states");
        for (int k = 0; k < output.HiddenStates.Count; k++)
            rows.Add(Floats($"hidden_states[{k}]", $"[{b}, {s}, {h}]", output.HiddenStates[k],
                hidden.AsSpan(k * b * s * h, b * s * h).ToArray(), mask, h));
        rows.Add(Floats("logits", $"[{b}, {s}, {output.Vocab}]", output.Logits, expected.ReadFloat32("logits"), mask, output.Vocab));
        if (output.Loss is { } loss)
            rows.Add(new ComparisonRow("loss", "[]", Math.Abs((double)loss - expected.ReadFloat32("loss")[0]), LossTolerance, false));
        if (generated is not null)
        {
            // The fixtures hold 8 new tokens per row; compare the first min(N, 8).
            var want = expected.ReadInt64("generated_new_tokens");
            int stored = want.Length / b, n = Math.Min(stored, generated.Steps);
            var got = new long[b * n];
            var cut = new long[b * n];
            for (int r = 0; r < b; r++)
            {
                Array.Copy(generated.NewTokens, r * generated.Steps, got, r * n, n);
                Array.Copy(want, r * stored, cut, r * n, n);
            }
            rows.Add(Ints("generated_new_tokens", $"[{b}, {n}]", got, cut));
        }
        return rows;
    }

    private static ComparisonRow Ints(string name, string shape, long[] actual, long[] expected)
    {
        int differing = actual.Length != expected.Length ? Math.Max(actual.Length, expected.Length)
            : actual.Zip(expected).Count(p => p.First != p.Second);
        return new ComparisonRow(name, shape, differing, 0, true);
    }

    private static ComparisonRow Floats(string name, string shape, float[] actual, float[] expected, long[]? mask, int width)
    {
        if (actual.Length != expected.Length)
            return new ComparisonRow(name, shape, double.PositiveInfinity, FloatTolerance, false);
        double max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (mask is not null && mask[i / width] == 0) continue;
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (!(d <= max)) max = double.IsNaN(d) ? double.PositiveInfinity : d;
        }
        return new ComparisonRow(name, shape, max, FloatTolerance, false);
    }
}
