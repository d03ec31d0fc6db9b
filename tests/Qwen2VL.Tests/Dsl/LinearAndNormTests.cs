using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

public class LinearAndNormTests
{
    [Fact]
    public void Linear_MatchesHandComputedProduct()
    {
        var x = new Tensor([2, 2], [1, 2, -1, 3]);
        var w = new Tensor([3, 2], [1, 0, 0, 1, 1, 1]);
        var b = new Tensor([3], [0.5, 0, -1]);
        TensorAssert.Close([1.5, 2, 2, -0.5, 3, 1], Ops.Linear(x, w, b), 1e-15, 2, 3);
        TensorAssert.Close([1, 2, 3, -1, 3, 2], Ops.Linear(x, w), 1e-15, 2, 3);
    }

    [Fact]
    public void Linear_KeepsLeadingAxes()
    {
        var x = TensorAssert.Random(1, 2, 3, 4);
        var w = TensorAssert.Random(2, 5, 4);
        var y = Ops.Linear(x, w);
        Assert.Equal([2, 3, 5], y.Shape);
        // Row (1, 2), output 3 as an explicit dot product.
        double e = 0;
        for (int k = 0; k < 4; k++) e += x[1, 2, k] * w[3, k];
        Assert.Equal(e, y[1, 2, 3], 14);
    }

    [Fact]
    public void Linear_ShapeMismatch_NamesOpAndShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Ops.Linear(Tensor.Zeros(2, 3), Tensor.Zeros(4, 5)));
        Assert.Contains("Linear", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[4, 5]", e.Message);
        Assert.Throws<ArgumentException>(() => Ops.Linear(Tensor.Zeros(2, 3), Tensor.Zeros(4, 3), Tensor.Zeros(3)));
    }

    [Fact]
    public void LayerNorm_UsesBiasedVarianceWithEpsInsideSqrt()
    {
        // Row [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5.
        var x = new Tensor([1, 4], [1, 2, 3, 6]);
        var w = new Tensor([4], [1, 2, 1, 0.5]);
        var b = new Tensor([4], [0, 1, 0, -1]);
        double inv = 1 / Math.Sqrt(3.5 + 0.25);
        TensorAssert.Close([-2 * inv, -1 * inv * 2 + 1, 0, 3 * inv * 0.5 - 1], Ops.LayerNorm(x, w, b, 0.25f), 1e-14, 1, 4);
    }

    [Fact]
    public void RmsNorm_ScalesByRootMeanSquare()
    {
        // Row [3, 4]: mean square 12.5.
        var x = new Tensor([2, 2], [3, 4, 0, -2]);
        var w = new Tensor([2], [2, 1]);
        double r0 = 1 / Math.Sqrt(12.5 + 0.5), r1 = 1 / Math.Sqrt(2 + 0.5);
        TensorAssert.Close([6 * r0, 4 * r0, 0, -2 * r1], Ops.RmsNorm(x, w, 0.5f), 1e-14, 2, 2);
    }

    [Fact]
    public void Norms_RejectWrongWeightShape()
    {
        var e = Assert.Throws<ArgumentException>(() => Ops.RmsNorm(Tensor.Zeros(2, 4), Tensor.Zeros(3), 1e-6f));
        Assert.Contains("RmsNorm", e.Message);
        Assert.Throws<ArgumentException>(() => Ops.LayerNorm(Tensor.Zeros(2, 4), Tensor.Zeros(4), Tensor.Zeros(5), 1e-6f));
    }
}
