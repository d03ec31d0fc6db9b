namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>Softmax over the last axis, exp(x − max) / Σ exp(x − max).</summary>
    [Op(OpGroup.Reduce, "x:[*B,D] -> [*B,D]", Grad = "dx = y·(dy − Σ dy·y)")]
    public static Tensor Softmax(Tensor x)
    {
        OpChecks.MinRank(nameof(Softmax), "x", x, 1);
        int d = x.Shape[^1];
        if (d == 0) throw OpChecks.Error(nameof(Softmax), $"x {OpChecks.S(x)} has an empty last axis");
        var y = new double[x.Count];
        for (int r = 0; r < x.Count / d; r++)
            SoftmaxInPlace(x.Data.AsSpan(r * d, d), y.AsSpan(r * d, d));
        return new Tensor((int[])x.Shape.Clone(), y);
    }

    /// <summary>Row softmax shared with the attention references.</summary>
    internal static void SoftmaxInPlace(ReadOnlySpan<double> x, Span<double> y)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += y[i] = Math.Exp(x[i] - max);
        for (int i = 0; i < x.Length; i++) y[i] /= sum;
    }
}
