using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>
/// How the next token is chosen from a step's logits, in the order transformers' <c>generate</c> applies them:
/// repetition penalty, then (when sampling) temperature, top-k and top-p, then a draw from the softmax.
/// <see cref="Temperature"/> 0 is greedy decoding (argmax, first index on ties as torch.argmax).
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>0 = greedy; otherwise logits are divided by it before sampling.</summary>
    public double Temperature { get; init; }

    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p (1 = off; 0 keeps the most likely one, as transformers).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>CTRL-style penalty on every token already in the sequence (1 = off): a logit z becomes z/θ if z &gt; 0, else z·θ.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Seed of the sampling draws; null picks a random seed.</summary>
    public int? Seed { get; init; }

    public static SamplingOptions Greedy { get; } = new();

    public bool IsGreedy => Temperature == 0;

    /// <summary>Throws a one-line <see cref="ModelException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || double.IsInfinity(Temperature))
            throw new ModelException($"temperature must be ≥ 0 (0 = greedy), got {Temperature}");
        if (TopK < 0)
            throw new ModelException($"top-k must be ≥ 0 (0 = off), got {TopK}");
        if (!(TopP >= 0 && TopP <= 1))
            throw new ModelException($"top-p must be in [0, 1], got {TopP}");
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
            throw new ModelException($"repetition penalty must be > 0 (1 = off), got {RepetitionPenalty}");
    }
}
