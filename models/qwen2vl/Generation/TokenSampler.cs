namespace Qwen2VL.Model.Generation;

/// <summary>Chooses one token from one row of logits according to <see cref="SamplingOptions"/>.</summary>
public sealed class TokenSampler
{
    private readonly SamplingOptions _options;
    private readonly Random _random;

    public TokenSampler(SamplingOptions options)
    {
        options.Validate();
        _options = options;
        _random = options.Seed is { } seed ? new Random(seed) : new Random();
    }

    /// <summary>
    /// The next token for one row. <paramref name="logits"/> [V] is not modified; <paramref name="seen"/> holds the
    /// ids the repetition penalty applies to (as transformers: every id of the row so far, prompt included).
    /// </summary>
    public long Next(ReadOnlySpan<float> logits, IReadOnlySet<long> seen)
    {
        var z = new double[logits.Length];
        for (int i = 0; i < z.Length; i++) z[i] = logits[i];
        if (_options.RepetitionPenalty != 1.0)
            foreach (long id in seen)
                if (id >= 0 && id < z.Length)
                    z[id] = z[id] > 0 ? z[id] / _options.RepetitionPenalty : z[id] * _options.RepetitionPenalty;
        if (_options.IsGreedy) return ArgMax(z);

        for (int i = 0; i < z.Length; i++) z[i] /= _options.Temperature;
        // Candidates by descending logit (stable: lower id first on ties).
        var order = Enumerable.Range(0, z.Length).OrderByDescending(i => z[i]).ToArray();
        int keep = order.Length;
        if (_options.TopK > 0 && _options.TopK < order.Length)
        {
            // transformers' TopKLogitsWarper removes the scores below the k-th largest: ties with it all stay.
            double kth = z[order[_options.TopK - 1]];
            keep = _options.TopK;
            while (keep < order.Length && z[order[keep]] >= kth) keep++;
        }
        double max = z[order[0]];
        var p = new double[keep];
        double sum = 0;
        for (int r = 0; r < keep; r++) sum += p[r] = Math.Exp(z[order[r]] - max);
        if (_options.TopP < 1.0)
        {
            // Smallest prefix whose probability reaches top-p; at least one token survives.
            double cumulative = 0;
            int cut = 0;
            while (cut < keep)
            {
                cumulative += p[cut++] / sum;
                if (cumulative >= _options.TopP) break;
            }
            keep = cut;
            sum = p.AsSpan(0, keep).ToArray().Sum();
        }
        double u = _random.NextDouble() * sum;
        for (int r = 0; r < keep; r++)
        {
            u -= p[r];
            if (u < 0) return order[r];
        }
        return order[keep - 1];
    }

    /// <summary>Index of the largest value; the first one on ties (as torch.argmax).</summary>
    public static long ArgMax(ReadOnlySpan<double> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++)
            if (row[i] > row[best]) best = i;
        return best;
    }
}
