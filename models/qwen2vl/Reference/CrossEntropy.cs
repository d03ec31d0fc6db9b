using Qwen2VL.Dsl;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Reference;

/// <summary>The causal-LM loss (spec §9.1): logits at t predict label t+1; label −100 is ignored.</summary>
public static class CrossEntropy
{
    public const long IgnoreIndex = -100;

    /// <summary>
    /// Mean over non-ignored positions of logsumexp(logits[b, t]) − logits[b, t, labels[b, t+1]];
    /// NaN when every label is ignored (as PyTorch's mean over nothing).
    /// </summary>
    public static double ShiftedMean(Tensor logits, long[] labels)
    {
        if (logits.Rank != 3 || labels.Length != logits.Shape[0] * logits.Shape[1])
            throw new ArgumentException($"CrossEntropy: labels ({labels.Length}) must match logits {Tensor.Format(logits.Shape)} [B, S, V]");
        int b = logits.Shape[0], s = logits.Shape[1], v = logits.Shape[2];
        double total = 0;
        int count = 0;
        for (int bi = 0; bi < b; bi++)
            for (int t = 0; t + 1 < s; t++)
            {
                long label = labels[bi * s + t + 1];
                if (label == IgnoreIndex) continue;
                if (label < 0 || label >= v)
                    throw new ModelException($"label {label} at row {bi}, position {t + 1} is outside the vocabulary [0, {v})");
                var row = logits.Data.AsSpan((bi * s + t) * v, v);
                double max = double.NegativeInfinity;
                foreach (var z in row) max = Math.Max(max, z);
                double sum = 0;
                foreach (var z in row) sum += Math.Exp(z - max);
                total += max + Math.Log(sum) - row[(int)label];
                count++;
            }
        return count == 0 ? double.NaN : total / count;
    }
}
