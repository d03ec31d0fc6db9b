using Xunit;

namespace Qwen2VL.Tests.Training.Kernels;

/// <summary>
/// Central finite differences of a scalar loss computed by the kernels under test (float32), at a fixed sample of
/// coordinates: (L(x + ε) − L(x − ε)) / 2ε. With ε = 1e-2 the truncation error is O(ε²) and float32 rounding of
/// the loss stays below ~1e-6 / ε, so agreement to 3e-4 (observed ≤ 1e-4) shows the gradient is the derivative of the forward.
/// </summary>
internal static class FiniteDifference
{
    public const float Epsilon = 1e-2f;
    public const double Tolerance = 3e-4;

    public static void Check(string name, float[] x, double[] gradient, Func<double> loss, int samples, int seed)
    {
        var random = new Random(seed);
        var coordinates = Enumerable.Range(0, samples).Select(_ => random.Next(x.Length)).Distinct().ToList();
        foreach (int at in coordinates)
        {
            float original = x[at];
            x[at] = original + Epsilon;
            double plus = loss();
            x[at] = original - Epsilon;
            double minus = loss();
            x[at] = original;
            double numeric = (plus - minus) / (2 * (double)Epsilon);
            double error = Math.Abs(numeric - gradient[at]) / Math.Max(1.0, Math.Abs(numeric));
            Assert.True(error <= Tolerance, $"{name}[{at}]: finite difference {numeric:G6}, gradient {gradient[at]:G6}, scaled diff {error:E2}");
        }
    }

    public static double[] ToDouble(float[] a) => a.Select(x => (double)x).ToArray();

    public static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }
}
