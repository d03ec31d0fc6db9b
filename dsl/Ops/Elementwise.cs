namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>a + b, where b's shape is a suffix of a's (b repeats over a's leading axes).</summary>
    [Op(OpGroup.Elementwise, "a:[*S]; b:[..S] -> [*S]", Scalar = "a + b", Grad = "da = dy; db = dy")]
    public static Tensor Add(Tensor a, Tensor b) => Broadcast(nameof(Add), a, b, static (x, y) => x + y);

    /// <summary>a · b, where b's shape is a suffix of a's (b repeats over a's leading axes).</summary>
    [Op(OpGroup.Elementwise, "a:[*S]; b:[..S] -> [*S]", Scalar = "a * b", Grad = "da = dy * b; db = dy * a")]
    public static Tensor Mul(Tensor a, Tensor b) => Broadcast(nameof(Mul), a, b, static (x, y) => x * y);

    /// <summary>x · s.</summary>
    [Op(OpGroup.Elementwise, "x:[*S] -> [*S]", Scalar = "x * s", Grad = "dx = dy * s")]
    public static Tensor Scale(Tensor x, float s)
    {
        double f = s;
        return Map(x, v => v * f);
    }

    /// <summary>Applies <paramref name="f"/> to every element; the result keeps x's shape (F32).</summary>
    internal static Tensor Map(Tensor x, Func<double, double> f)
    {
        var y = new double[x.Count];
        for (int i = 0; i < y.Length; i++) y[i] = f(x.Data[i]);
        return new Tensor((int[])x.Shape.Clone(), y);
    }

    private static Tensor Broadcast(string op, Tensor a, Tensor b, Func<double, double, double> f)
    {
        if (b.Rank > a.Rank || !a.Shape.AsSpan(a.Rank - b.Rank).SequenceEqual(b.Shape))
            throw OpChecks.Error(op, $"b {OpChecks.S(b)} is not a suffix of a {OpChecks.S(a)}");
        var y = new double[a.Count];
        int m = b.Count;
        if (m == 0) return new Tensor((int[])a.Shape.Clone(), y);
        for (int i = 0; i < y.Length; i++) y[i] = f(a.Data[i], b.Data[i % m]);
        return new Tensor((int[])a.Shape.Clone(), y);
    }
}
