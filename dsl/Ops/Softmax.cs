namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>Softmax over the last axis, exp(x − max) / Σ exp(x − max).</summary>
    [Op(OpGroup.Reduce, "x:[*B,D] -> [*B,D]", Grad = "dx = SoftmaxBackward(y, dy)")]
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

    /// <summary>Softmax's backward from its output y: dx = y·(dy − Σ dy·y) per row.</summary>
    [Op(OpGroup.Reduce, "y:[*B,D]; dy:[*B,D] -> [*B,D]")]
    public static Tensor SoftmaxBackward(Tensor y, Tensor dy)
    {
        OpChecks.MinRank(nameof(SoftmaxBackward), "y", y, 1);
        if (!y.Shape.AsSpan().SequenceEqual(dy.Shape))
            throw OpChecks.Error(nameof(SoftmaxBackward), $"y {OpChecks.S(y)} and dy {OpChecks.S(dy)} differ");
        int d = y.Shape[^1];
        var dx = new double[y.Count];
        for (int o = 0; o + d <= y.Count && d > 0; o += d)
        {
            double dot = 0;
            for (int j = 0; j < d; j++) dot += dy.Data[o + j] * y.Data[o + j];
            for (int j = 0; j < d; j++) dx[o + j] = y.Data[o + j] * (dy.Data[o + j] - dot);
        }
        return new Tensor((int[])y.Shape.Clone(), dx);
    }
}
