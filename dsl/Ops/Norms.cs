namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>
    /// LayerNorm over the last axis: (x − mean) / sqrt(var + eps) · w + b, with the biased variance
    /// (divide by D), as <c>nn.LayerNorm</c>.
    /// </summary>
    [Op(OpGroup.Norm, "x:[*B,D]; w:[D]; b:[D] -> [*B,D]",
        Grad = "dx = LayerNormBackward(dy, x, w, eps); dw = ColumnSum(LayerNormWeightRows(dy, x, eps)); db = ColumnSum(dy)")]
    public static Tensor LayerNorm(Tensor x, Tensor w, Tensor b, float eps)
    {
        const string op = nameof(LayerNorm);
        int d = CheckNorm(op, x, w);
        if (b.Rank != 1 || b.Shape[0] != d)
            throw OpChecks.Error(op, $"bias {OpChecks.S(b)} must be [{d}] for x {OpChecks.S(x)}");

        var y = new double[x.Count];
        for (int r = 0; r < x.Count / d; r++)
        {
            var row = x.Data.AsSpan(r * d, d);
            double mean = 0;
            foreach (var v in row) mean += v;
            mean /= d;
            double var = 0;
            foreach (var v in row) var += (v - mean) * (v - mean);
            var /= d;
            double inv = 1.0 / Math.Sqrt(var + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = (row[i] - mean) * inv * w.Data[i] + b.Data[i];
        }
        return new Tensor((int[])x.Shape.Clone(), y);
    }

    /// <summary>RMSNorm over the last axis: x · rsqrt(mean(x²) + eps) · w (Qwen2 / LLaMA style, no bias).</summary>
    [Op(OpGroup.Norm, "x:[*B,D]; w:[D] -> [*B,D]",
        Grad = "dx = RmsNormBackward(dy, x, w, eps); dw = ColumnSum(RmsNormWeightRows(dy, x, eps))")]
    public static Tensor RmsNorm(Tensor x, Tensor w, float eps)
    {
        int d = CheckNorm(nameof(RmsNorm), x, w);
        var y = new double[x.Count];
        for (int r = 0; r < x.Count / d; r++)
        {
            var row = x.Data.AsSpan(r * d, d);
            double ms = 0;
            foreach (var v in row) ms += v * v;
            double inv = 1.0 / Math.Sqrt(ms / d + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = row[i] * inv * w.Data[i];
        }
        return new Tensor((int[])x.Shape.Clone(), y);
    }

    private static int CheckNorm(string op, Tensor x, Tensor w)
    {
        OpChecks.MinRank(op, "x", x, 1);
        int d = x.Shape[^1];
        if (d == 0) throw OpChecks.Error(op, $"x {OpChecks.S(x)} has an empty last axis");
        if (w.Rank != 1 || w.Shape[0] != d)
            throw OpChecks.Error(op, $"weight {OpChecks.S(w)} must be [{d}] for x {OpChecks.S(x)}");
        return d;
    }

    // The norms' backward ops (their gradient rules name them). With x̂ = (x − mean)·r, r = 1/sqrt(var + eps):
    // LayerNorm dx = r·(dy·w − mean(dy·w) − x̂·mean(dy·w·x̂)); RmsNorm (x̂ = x·r) dx = r·dy·w − x·r³·mean(dy·w·x).
    // The weight gradient is the column sum of the rows dy·x̂.

    /// <summary>LayerNorm's input gradient.</summary>
    [Op(OpGroup.Norm, "dy:[*B,D]; x:[*B,D]; w:[D] -> [*B,D]")]
    public static Tensor LayerNormBackward(Tensor dy, Tensor x, Tensor w, float eps) => NormBackward(nameof(LayerNormBackward), dy, x, w, eps, centre: true);

    /// <summary>The rows dy·x̂ of LayerNorm, whose column sum is its weight gradient.</summary>
    [Op(OpGroup.Norm, "dy:[*B,D]; x:[*B,D] -> [*B,D]")]
    public static Tensor LayerNormWeightRows(Tensor dy, Tensor x, float eps) => NormWeightRows(nameof(LayerNormWeightRows), dy, x, eps, centre: true);

    /// <summary>RmsNorm's input gradient.</summary>
    [Op(OpGroup.Norm, "dy:[*B,D]; x:[*B,D]; w:[D] -> [*B,D]")]
    public static Tensor RmsNormBackward(Tensor dy, Tensor x, Tensor w, float eps) => NormBackward(nameof(RmsNormBackward), dy, x, w, eps, centre: false);

    /// <summary>The rows dy·x·r of RmsNorm, whose column sum is its weight gradient.</summary>
    [Op(OpGroup.Norm, "dy:[*B,D]; x:[*B,D] -> [*B,D]")]
    public static Tensor RmsNormWeightRows(Tensor dy, Tensor x, float eps) => NormWeightRows(nameof(RmsNormWeightRows), dy, x, eps, centre: false);

    /// <summary>A row's mean (0 for RmsNorm) and r = 1/sqrt(var + eps) (mean of squares for RmsNorm).</summary>
    private static (double Mean, double R) RowStats(ReadOnlySpan<double> row, float eps, bool centre)
    {
        double mean = 0;
        if (centre)
        {
            foreach (var v in row) mean += v;
            mean /= row.Length;
        }
        double var = 0;
        foreach (var v in row) var += (v - mean) * (v - mean);
        return (mean, 1.0 / Math.Sqrt(var / row.Length + eps));
    }

    private static Tensor NormBackward(string op, Tensor dy, Tensor x, Tensor w, float eps, bool centre)
    {
        int d = CheckNorm(op, x, w);
        if (!x.Shape.AsSpan().SequenceEqual(dy.Shape)) throw OpChecks.Error(op, $"dy {OpChecks.S(dy)} and x {OpChecks.S(x)} differ");
        var dx = new double[x.Count];
        for (int o = 0; o < x.Count; o += d)
        {
            var (mean, r) = RowStats(x.Data.AsSpan(o, d), eps, centre);
            double sumG = 0, sumGX = 0;
            for (int j = 0; j < d; j++)
            {
                double g = dy.Data[o + j] * w.Data[j];
                sumG += g;
                sumGX += g * (x.Data[o + j] - mean) * r;
            }
            sumG = centre ? sumG / d : 0;
            sumGX /= d;
            for (int j = 0; j < d; j++)
                dx[o + j] = r * (dy.Data[o + j] * w.Data[j] - sumG - (x.Data[o + j] - mean) * r * sumGX);
        }
        return new Tensor((int[])x.Shape.Clone(), dx);
    }

    private static Tensor NormWeightRows(string op, Tensor dy, Tensor x, float eps, bool centre)
    {
        OpChecks.MinRank(op, "x", x, 1);
        if (!x.Shape.AsSpan().SequenceEqual(dy.Shape)) throw OpChecks.Error(op, $"dy {OpChecks.S(dy)} and x {OpChecks.S(x)} differ");
        int d = x.Shape[^1];
        var rows = new double[x.Count];
        for (int o = 0; o + d <= x.Count && d > 0; o += d)
        {
            var (mean, r) = RowStats(x.Data.AsSpan(o, d), eps, centre);
            for (int j = 0; j < d; j++) rows[o + j] = dy.Data[o + j] * (x.Data[o + j] - mean) * r;
        }
        return new Tensor((int[])x.Shape.Clone(), rows);
    }
}
