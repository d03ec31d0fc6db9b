namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>
    /// LayerNorm over the last axis: (x − mean) / sqrt(var + eps) · w + b, with the biased variance
    /// (divide by D), as <c>nn.LayerNorm</c>.
    /// </summary>
    [Op(OpGroup.Norm, "x:[*B,D]; w:[D]; b:[D] -> [*B,D]",
        Grad = "x̂ = (x − μ)·r; dw = Σrows dy·x̂; db = Σrows dy; dx = r·(dy·w − mean(dy·w) − x̂·mean(dy·w·x̂))")]
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
        Grad = "dw = Σrows dy·x·r; dx = r·dy·w − x·r³·mean(dy·w·x)")]
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
}
