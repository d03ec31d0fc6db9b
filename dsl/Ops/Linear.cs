namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>y = x·Wᵀ + b over the last axis (PyTorch <c>nn.Linear</c>; W stored [out, in]).</summary>
    [Op(OpGroup.Matmul, "x:[*B,K]; w:[N,K]; b?:[N] -> [*B,N]",
        Grad = "dx = dy·w; dw = dyᵀ·x; db = Σrows dy")]
    public static Tensor Linear(Tensor x, Tensor w, Tensor? b = null)
    {
        const string op = nameof(Linear);
        OpChecks.MinRank(op, "x", x, 1);
        OpChecks.Rank(op, "w", w, 2);
        int k = x.Shape[^1], n = w.Shape[0];
        if (w.Shape[1] != k)
            throw OpChecks.Error(op, $"x {OpChecks.S(x)} and w {OpChecks.S(w)} disagree on K");
        if (b is not null && (b.Rank != 1 || b.Shape[0] != n))
            throw OpChecks.Error(op, $"bias {OpChecks.S(b)} must be [{n}] for w {OpChecks.S(w)}");

        int rows = Tensor.Product(x.Shape.AsSpan(0, x.Rank - 1));
        var shape = (int[])x.Shape.Clone();
        shape[^1] = n;
        var y = new double[rows * n];
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Data.AsSpan(r * k, k);
            for (int o = 0; o < n; o++)
            {
                var wo = w.Data.AsSpan(o * k, k);
                double acc = b is null ? 0.0 : b.Data[o];
                for (int i = 0; i < k; i++) acc += xr[i] * wo[i];
                y[r * n + o] = acc;
            }
        }
        return new Tensor(shape, y);
    }
}
