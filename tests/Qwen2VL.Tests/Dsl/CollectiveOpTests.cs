using System.Reflection;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Dsl;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Dsl;

/// <summary>
/// The collectives of the DSL op set (Megatron's conjugate pairs): their float64 references on 1–3 thread ranks of a
/// <see cref="ReferenceGroup"/>, and their rows of the gradient table. A collective is linear over the ranks' values, so
/// its row is right exactly when it is the adjoint: ⟨op(x), dy⟩ = ⟨x, row(dy)⟩ for random x, dy, the inner products
/// summed over the ranks' values, a replicated value (the same on every rank) counted once. That is what makes
/// ParallelCopy's backward an all-reduce and AllReduce's the identity, and AllGather's a reduce-scatter.
/// </summary>
public sealed class CollectiveOpTests(ITestOutputHelper output)
{
    private static Tensor Rand(Random rng, params int[] shape)
    {
        var data = new double[Tensor.Product(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = rng.NextDouble() * 2 - 1;
        return Tensor.FromDouble(data, shape);
    }

    private static double Dot(Tensor a, Tensor b)
    {
        Assert.Equal(a.Shape, b.Shape);
        return a.Data.Select((v, i) => v * b.Data[i]).Sum();
    }

    private static string Row(string op) =>
        typeof(Ops).GetMethod(op, BindingFlags.Public | BindingFlags.Static)!.GetCustomAttribute<OpAttribute>()!.Grad!;

    [Fact]
    public void References_OnThreeRanks_AreTheRankOrderCollectives()
    {
        const int ranks = 3;
        var xs = Enumerable.Range(0, ranks).Select(r => Rand(new Random(10 + r), 2, 6)).ToArray();
        var results = ReferenceGroup.Run(ranks, r => (
            Copy: Ops.ParallelCopy(xs[r]), Sum: Ops.AllReduce(xs[r]), Gathered: Ops.AllGather(xs[r], ranks), Scattered: Ops.ReduceScatter(xs[r], ranks)));
        var sum = xs[0].Data.Select((v, i) => v + xs[1].Data[i] + xs[2].Data[i]).ToArray(); // (x0 + x1) + x2: rank order
        for (int r = 0; r < ranks; r++)
        {
            var (copy, reduced, gathered, scattered) = results[r];
            Assert.Equal(xs[r].Data, copy.Data);
            Assert.Equal(sum, reduced.Data);
            Assert.Equal(new[] { 2, 18 }, gathered.Shape);
            for (int row = 0; row < 2; row++)
                for (int s = 0; s < ranks; s++)
                    for (int j = 0; j < 6; j++)
                        Assert.Equal(xs[s][row, j], gathered[row, s * 6 + j]);
            Assert.Equal(new[] { 2, 2 }, scattered.Shape);
            for (int row = 0; row < 2; row++)
                for (int j = 0; j < 2; j++)
                    Assert.Equal(sum[row * 6 + r * 2 + j], scattered[row, j]);
        }
    }

    [Fact]
    public void AtDegreeOne_EveryCollectiveIsTheIdentity()
    {
        var x = Rand(new Random(3), 3, 4);
        foreach (var y in new[] { Ops.ParallelCopy(x), Ops.AllReduce(x), Ops.AllGather(x, 1), Ops.ReduceScatter(x, 1) })
        {
            Assert.Equal(x.Shape, y.Shape);
            Assert.Equal(x.Data, y.Data);
        }
        // parts is the degree: outside a group it can only be 1.
        var e = Assert.Throws<ArgumentException>(() => Ops.AllGather(x, 2));
        Assert.Contains("parts = 2 but the group has 1 rank", e.Message);
    }

    public static IEnumerable<object[]> Cases() =>
        from op in new[] { "ParallelCopy", "AllReduce", "AllGather", "ReduceScatter" }
        from ranks in new[] { 2, 3 }
        select new object[] { op, ranks };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EachRowIsTheAdjointOfItsCollective(string op, int ranks)
    {
        var (lhs, rhs) = Adjoint(op, Row(op), ranks);
        output.WriteLine($"{op} on {ranks} ranks, row '{Row(op)}': Σ<y, dy> = {lhs:G15}, Σ<x, dx> = {rhs:G15}");
        Assert.True(Math.Abs(lhs - rhs) <= 1e-12 * Math.Max(1, Math.Abs(lhs)), $"{op}: Σ<y, dy> = {lhs:G15} but Σ<x, dx> = {rhs:G15}");
    }

    [Theory]
    [InlineData("ParallelCopy", "dx = dy")]                 // f's backward is not the identity: the ranks' gradients must be summed
    [InlineData("AllReduce", "dx = AllReduce(dy)")]         // g's backward is not another all-reduce
    [InlineData("AllGather", "dx = ReduceScatter(dy, parts) * 0.5")]
    public void AWrongRowIsNotTheAdjoint(string op, string wrongRow)
    {
        var (lhs, rhs) = Adjoint(op, wrongRow, 2);
        Assert.False(Math.Abs(lhs - rhs) <= 1e-3, $"{op} with '{wrongRow}' passed the adjoint check: {lhs:G15} vs {rhs:G15}");
    }

    /// <summary>
    /// How each collective's operand and result live across the ranks. Replicated: one value, the same on every rank
    /// (inner products count it once). Per rank: each rank's own (a shard, a partial sum, or a copy that the ranks then
    /// use differently, whose gradients therefore differ). ParallelCopy takes a replicated value into per-rank work;
    /// AllReduce returns a replicated value, on which every rank computes the same (so its gradient is replicated too).
    /// </summary>
    private static readonly Dictionary<string, (bool ReplicatedIn, bool ReplicatedOut)> Spaces = new()
    {
        ["ParallelCopy"] = (true, false),
        ["AllReduce"] = (false, true),
        ["AllGather"] = (false, false),
        ["ReduceScatter"] = (false, false),
    };

    /// <summary>⟨op(x), dy⟩ and ⟨x, row(dy)⟩ summed over <paramref name="ranks"/> thread ranks, replicated values once.</summary>
    private static (double Lhs, double Rhs) Adjoint(string op, string row, int ranks)
    {
        var method = typeof(Ops).GetMethod(op, BindingFlags.Public | BindingFlags.Static)!;
        var assignment = (AssignmentExpressionSyntax)SyntaxFactory.ParseExpression(row);
        var (replicatedIn, replicatedOut) = Spaces[op];
        var results = ReferenceGroup.Run(ranks, r =>
        {
            var x = Rand(new Random(replicatedIn ? 7 : 100 * ranks + r), 2, 6);
            object[] args = method.GetParameters().Length == 1 ? [x] : [x, ranks];
            var y = (Tensor)method.Invoke(null, args)!;
            var dy = Rand(new Random(replicatedOut ? 8 : 200 * ranks + r), y.Shape);
            var scope = new Dictionary<string, object> { ["x"] = x, ["y"] = y, ["dy"] = dy, ["parts"] = ranks };
            var dx = (Tensor)GradientTableTests.Evaluate(assignment.Right, scope);
            return (Y: y, Dy: dy, X: x, Dx: dx);
        });
        // A replicated value is one value: every rank must hold the same, and it counts once.
        double Sum(Func<(Tensor Y, Tensor Dy, Tensor X, Tensor Dx), double> dot, bool replicated, Func<(Tensor Y, Tensor Dy, Tensor X, Tensor Dx), Tensor> value)
        {
            if (!replicated)
                return results.Sum(dot);
            return results.All(t => value(t).Data.SequenceEqual(value(results[0]).Data)) ? dot(results[0]) : double.NaN;
        }
        return (Sum(t => Dot(t.Y, t.Dy), replicatedOut, t => t.Y), Sum(t => Dot(t.X, t.Dx), replicatedIn, t => t.Dx));
    }
}
