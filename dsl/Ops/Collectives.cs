namespace Qwen2VL.Dsl;

// The collectives of tensor parallelism as ops (Megatron-LM, Shoeybi et al. 2019, §3): each is linear, and its row of
// the gradient table is its adjoint, so the pairs are conjugate — ParallelCopy (Megatron's f: identity forward,
// all-reduce backward) with AllReduce (g: all-reduce forward, identity backward), and AllGather with ReduceScatter.
// Autodiff then yields the backward collectives. The adjoint is taken with Megatron's convention for where values live:
// ParallelCopy's operand is replicated (one value on every rank) and feeds different work on each rank, so its
// gradient is the sum of the ranks' contributions; AllReduce's result is replicated and every rank computes the same
// from it, so its gradient is already whole on every rank (tests/…/Dsl/CollectiveOpTests checks each row this way). The references run over the ranks of a ReferenceGroup (one thread
// per rank); outside one, the group has one rank and every collective is the identity (degree 1).
public static partial class Ops
{
    /// <summary>Megatron's f: enters a tensor-parallel region. Forward the identity; its gradient is all-reduced.</summary>
    [Op(OpGroup.Collective, "x:[*S] -> [*S]", Grad = "dx = AllReduce(dy)")]
    public static Tensor ParallelCopy(Tensor x) => new((int[])x.Shape.Clone(), (double[])x.Data.Clone(), x.DType);

    /// <summary>Megatron's g: the sum of every rank's <paramref name="x"/> (in rank order), on every rank.</summary>
    [Op(OpGroup.Collective, "x:[*S] -> [*S]", Grad = "dx = ParallelCopy(dy)")]
    public static Tensor AllReduce(Tensor x)
    {
        var all = ReferenceGroup.Exchange(nameof(AllReduce), x);
        var y = (double[])all[0].Data.Clone();
        for (int r = 1; r < all.Length; r++)
            for (int i = 0; i < y.Length; i++) y[i] += all[r].Data[i];
        return new Tensor((int[])x.Shape.Clone(), y, x.DType);
    }

    /// <summary>
    /// Every rank's <paramref name="x"/> [*B, N] joined along the last axis in rank order: [*B, N·parts] on every rank.
    /// <paramref name="parts"/> is the group's size (the degree), a dim in the module.
    /// </summary>
    [Op(OpGroup.Collective, "custom", Grad = "dx = ReduceScatter(dy, parts)")]
    public static Tensor AllGather(Tensor x, int parts)
    {
        const string op = nameof(AllGather);
        OpChecks.MinRank(op, "x", x, 1);
        CheckParts(op, parts);
        var all = ReferenceGroup.Exchange(op, x);
        int n = x.Shape[^1], rows = x.Count / Math.Max(n, 1);
        var shape = (int[])x.Shape.Clone();
        shape[^1] = n * parts;
        var y = new double[rows * n * parts];
        for (int r = 0; r < parts; r++)
            for (int row = 0; row < rows; row++)
                Array.Copy(all[r].Data, row * n, y, (row * parts + r) * n, n);
        return new Tensor(shape, y, x.DType);
    }

    /// <summary>
    /// The sum of every rank's <paramref name="x"/> [*B, N] (in rank order), of which rank r keeps block r of the last
    /// axis: [*B, N/parts]. N must divide by <paramref name="parts"/>, the group's size.
    /// </summary>
    [Op(OpGroup.Collective, "custom", Grad = "dx = AllGather(dy, parts)")]
    public static Tensor ReduceScatter(Tensor x, int parts)
    {
        const string op = nameof(ReduceScatter);
        OpChecks.MinRank(op, "x", x, 1);
        CheckParts(op, parts);
        int n = x.Shape[^1];
        if (n % parts != 0) throw OpChecks.Error(op, $"the last dim of x {OpChecks.S(x)} does not divide by {parts} parts");
        var sum = AllReduce(x);
        int block = n / parts, rows = x.Count / Math.Max(n, 1), rank = ReferenceGroup.CurrentRank;
        var shape = (int[])x.Shape.Clone();
        shape[^1] = block;
        var y = new double[rows * block];
        for (int row = 0; row < rows; row++)
            Array.Copy(sum.Data, row * n + rank * block, y, row * block, block);
        return new Tensor(shape, y, x.DType);
    }

    private static void CheckParts(string op, int parts)
    {
        if (parts != ReferenceGroup.CurrentSize)
            throw OpChecks.Error(op, $"parts = {parts} but the group has {ReferenceGroup.CurrentSize} rank(s)");
    }
}
