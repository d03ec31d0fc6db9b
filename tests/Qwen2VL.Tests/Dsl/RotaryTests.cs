using System.Numerics;
using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

public class RotaryTests
{
    /// <summary>Independent 1-D RoPE: pair (d, d + D/2) as the complex number x_d + i·x_{d+D/2}, times e^{i·p·θ^(−2d/D)}.</summary>
    private static double[] Rope1D(double[] x, long[] positions, int heads, int d, double theta)
    {
        var y = new double[x.Length];
        for (int t = 0; t < positions.Length; t++)
            for (int h = 0; h < heads; h++)
                for (int j = 0; j < d / 2; j++)
                {
                    int o = (t * heads + h) * d;
                    var z = new Complex(x[o + j], x[o + j + d / 2]) *
                            Complex.FromPolarCoordinates(1, positions[t] * Math.Pow(theta, -2.0 * j / d));
                    y[o + j] = z.Real;
                    y[o + j + d / 2] = z.Imaginary;
                }
        return y;
    }

    [Fact]
    public void MRope_WithEqualAxes_IsOneDimensionalRope()
    {
        var x = TensorAssert.Random(7, 1, 5, 2, 16);
        long[] p = [0, 3, 4, 9, 30];
        var pos = Tensor.FromInt64([.. p, .. p, .. p], 3, 1, 5);
        var y = Ops.MRope(x, pos, 1e6f, 2, 3, 3);
        TensorAssert.Close(Rope1D(x.Data, p, 2, 16, 1e6), y, 1e-13, 1, 5, 2, 16);
    }

    [Fact]
    public void MRope_FrequencySectionsReadTheirAxis()
    {
        // Three tokens with distinct t/h/w positions; each frequency must match 1-D RoPE on its own axis.
        var x = TensorAssert.Random(8, 1, 3, 1, 16);
        long[] pt = [1, 2, 3], ph = [5, 7, 11], pw = [13, 17, 19];
        var y = Ops.MRope(x, Tensor.FromInt64([.. pt, .. ph, .. pw], 3, 1, 3), 1e6f, 2, 3, 3);
        var byAxis = new[] { Rope1D(x.Data, pt, 1, 16, 1e6), Rope1D(x.Data, ph, 1, 16, 1e6), Rope1D(x.Data, pw, 1, 16, 1e6) };
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < 8; k++)
            {
                int axis = k < 2 ? 0 : k < 5 ? 1 : 2;
                Assert.Equal(byAxis[axis][t * 16 + k], y.Data[t * 16 + k], 13);
                Assert.Equal(byAxis[axis][t * 16 + k + 8], y.Data[t * 16 + k + 8], 13);
            }
    }

    [Fact]
    public void MRope_RejectsSectionsThatDoNotCoverHalfTheHeadDim()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            Ops.MRope(Tensor.Zeros(1, 2, 1, 16), Tensor.FromInt64(new long[6], 3, 1, 2), 1e6f, 2, 3, 2));
        Assert.Contains("MRope", e.Message);
        Assert.Throws<ArgumentException>(() =>
            Ops.MRope(Tensor.Zeros(1, 2, 1, 16), Tensor.FromInt64(new long[4], 2, 1, 2), 1e6f, 2, 3, 3));
    }

    [Fact]
    public void VisionRotary_AnglesFollowSpecExample()
    {
        // Spec §12.4 (head dim 80): for patch (h=3, w=5), dim 0 angle = 3, dim 20 angle = 5, dim 1 angle = 3·10000^(−1/20).
        int d = 80;
        var pos = Tensor.FromInt64([3, 5], 1, 2);
        double Angle(int dim)
        {
            var x = Tensor.Zeros(1, 1, d);
            x[0, 0, dim] = 1;
            var y = Ops.VisionRotary(x, pos, 10000f);
            return Math.Atan2(y[0, 0, dim + d / 2], y[0, 0, dim]);
        }
        Assert.Equal(3, Angle(0), 12);
        Assert.Equal(5 - 2 * Math.PI, Angle(20), 12); // atan2 wraps 5 rad into (−π, π]
        Assert.Equal(3 * Math.Pow(10000, -1.0 / 20), Angle(1), 12);
        Assert.Equal(5 * Math.Pow(10000, -2.0 / 20), Angle(22), 12);
    }

    [Fact]
    public void VisionRotary_PreservesNormOfEveryPair()
    {
        var x = TensorAssert.Random(9, 4, 2, 16);
        var pos = Tensor.FromInt64([0, 0, 1, 2, 7, 3, 40, 41], 4, 2);
        var y = Ops.VisionRotary(x, pos, 10000f);
        for (int r = 0; r < 8; r++)
            for (int j = 0; j < 8; j++)
            {
                double a = Math.Pow(x.Data[r * 16 + j], 2) + Math.Pow(x.Data[r * 16 + j + 8], 2);
                double b = Math.Pow(y.Data[r * 16 + j], 2) + Math.Pow(y.Data[r * 16 + j + 8], 2);
                Assert.Equal(a, b, 13);
            }
        // Position (0, 0) is the identity.
        TensorAssert.Close(x.Data[..32], y.Data[..32], 0);
        Assert.Throws<ArgumentException>(() => Ops.VisionRotary(x, Tensor.FromInt64(new long[6], 3, 2), 10000f));
    }
}
