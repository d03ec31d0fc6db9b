namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>y = x·Wᵀ + b over the last axis (PyTorch <c>nn.Linear</c>; W stored [out, in]).</summary>
    [Op(OpGroup.Matmul, "x:[*B,K]; w:[N,K]; b?:[N] -> [*B,N]",
        Grad = "dx = MatMul(dy, w); dw = MatMulTN(dy, x); db = ColumnSum(dy)")]
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

    // Linear's backward ops (its gradient rule names them): the two GEMMs and the bias reduction.

    /// <summary>dy·w: dy [*B,N] times w [N,K] → [*B,K] (the input gradient of Linear).</summary>
    [Op(OpGroup.Matmul, "dy:[*B,N]; w:[N,K] -> [*B,K]")]
    public static Tensor MatMul(Tensor dy, Tensor w)
    {
        const string op = nameof(MatMul);
        OpChecks.MinRank(op, "dy", dy, 1);
        OpChecks.Rank(op, "w", w, 2);
        int n = w.Shape[0], k = w.Shape[1];
        if (dy.Shape[^1] != n) throw OpChecks.Error(op, $"dy {OpChecks.S(dy)} and w {OpChecks.S(w)} disagree on N");
        int rows = dy.Count / Math.Max(n, 1);
        var shape = (int[])dy.Shape.Clone();
        shape[^1] = k;
        var y = new double[rows * k];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < n; o++)
                Axpy(dy.Data[r * n + o], w, o * k, y, r * k, k);
        return new Tensor(shape, y);
    }

    /// <summary>dyᵀ·x over all leading rows: dy [*B,N], x [*B,K] → [N,K] (the weight gradient of Linear).</summary>
    [Op(OpGroup.Matmul, "dy:[*B,N]; x:[*B,K] -> [N,K]")]
    public static Tensor MatMulTN(Tensor dy, Tensor x)
    {
        const string op = nameof(MatMulTN);
        OpChecks.MinRank(op, "dy", dy, 1);
        OpChecks.MinRank(op, "x", x, 1);
        int n = dy.Shape[^1], k = x.Shape[^1];
        int rows = dy.Count / Math.Max(n, 1);
        if (x.Count != rows * k) throw OpChecks.Error(op, $"dy {OpChecks.S(dy)} and x {OpChecks.S(x)} have different rows");
        var y = new double[n * k];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < n; o++)
                Axpy(dy.Data[r * n + o], x, r * k, y, o * k, k);
        return new Tensor([n, k], y);
    }

    /// <summary>Σ over all leading rows: x [*B,N] → [N] (bias and norm-weight gradients).</summary>
    [Op(OpGroup.Reduce, "x:[*B,N] -> [N]")]
    public static Tensor ColumnSum(Tensor x)
    {
        OpChecks.MinRank(nameof(ColumnSum), "x", x, 1);
        int n = x.Shape[^1];
        var y = new double[n];
        for (int i = 0; i < x.Count; i++) y[i % n] += x.Data[i];
        return new Tensor([n], y);
    }
}
