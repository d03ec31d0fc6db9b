using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

public class ElementwiseTests
{
    [Fact]
    public void AddAndMul_BroadcastSecondOperandAsSuffix()
    {
        var a = new Tensor([2, 3], [1, 2, 3, 4, 5, 6]);
        var b = new Tensor([3], [10, 20, 30]);
        TensorAssert.Close([11, 22, 33, 14, 25, 36], a + b, 0, 2, 3);
        TensorAssert.Close([10, 40, 90, 40, 100, 180], a * b, 0, 2, 3);
        TensorAssert.Close([2, 4, 6, 8, 10, 12], Ops.Add(a, a), 0, 2, 3);
    }

    [Fact]
    public void AddAndMul_RejectNonSuffixShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Ops.Add(Tensor.Zeros(2, 3), Tensor.Zeros(2)));
        Assert.Contains("Add", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Throws<ArgumentException>(() => Ops.Mul(Tensor.Zeros(3), Tensor.Zeros(2, 3)));
    }

    [Fact]
    public void Scale_Multiplies() =>
        TensorAssert.Close([0.25, -0.5], Ops.Scale(new Tensor([2], [1, -2]), 0.25f), 0, 2);

    [Fact]
    public void Activations_MatchTheirDefinitions()
    {
        var x = new Tensor([5], [-3, -0.5, 0, 0.7, 2.5]);
        double Sig(double v) => 1 / (1 + Math.Exp(-v));
        foreach (var (i, v) in x.Data.Index())
        {
            Assert.Equal(Sig(v), Ops.Sigmoid(x).Data[i], 15);
            Assert.Equal(v * Sig(v), Ops.Silu(x).Data[i], 15);
            Assert.Equal(v * Sig(1.702 * v), Ops.QuickGelu(x).Data[i], 15);
        }
        // Exact-erf GELU at known points: GELU(1) = 0.5·(1 + erf(1/√2)) = 0.8413447460685429.
        var g = Ops.Gelu(new Tensor([3], [1, -1, 0]));
        Assert.Equal(0.8413447460685429, g.Data[0], 14);
        Assert.Equal(-0.15865525393145707, g.Data[1], 14);
        Assert.Equal(0, g.Data[2]);
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.1, 0.1124629160182849)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(4.5, 0.9999999998033839)]
    [InlineData(-1.5, -0.9661051464753108)]
    [InlineData(7.0, 1.0)]
    public void Erf_MatchesTabulatedValues(double x, double expected) =>
        Assert.True(Math.Abs(SpecialFunctions.Erf(x) - expected) < 1e-14, $"erf({x}) = {SpecialFunctions.Erf(x):R}, expected {expected:R}");

    [Fact]
    public void Erf_IsOddAndMonotone()
    {
        double prev = -1;
        for (double x = -6.5; x <= 6.5; x += 0.01)
        {
            double v = SpecialFunctions.Erf(x);
            Assert.Equal(-v, SpecialFunctions.Erf(-x));
            Assert.True(v >= prev, $"erf not monotone at {x}");
            prev = v;
        }
    }
}
