namespace Qwen2VL.Dsl;

/// <summary>Scalar functions the reference ops need and <see cref="Math"/> lacks.</summary>
public static class SpecialFunctions
{
    /// <summary>
    /// The error function in double precision (absolute error ~1e-16).
    /// |x| &lt; 2.5: the everywhere-convergent series erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)),
    /// whose terms are all positive (no cancellation, unlike the Taylor series).
    /// |x| ≥ 2.5: erf = 1 − erfc with Laplace's continued fraction
    /// erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated bottom-up; there it converges
    /// fast, and 1 − (small erfc) keeps erf monotone as it approaches 1.
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x), x2 = ax * ax, r;
        if (ax < 2.5)
        {
            double term = ax, sum = ax;
            for (int n = 1; n < 200; n++)
            {
                term *= 2.0 * x2 / (2 * n + 1);
                sum += term;
                if (term < 1e-17 * sum) break;
            }
            r = 2.0 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
        }
        else
        {
            double f = ax;
            for (int n = 80; n >= 1; n--) f = ax + n / 2.0 / f;
            r = 1.0 - Math.Exp(-x2) / (Math.Sqrt(Math.PI) * f);
        }
        return x < 0 ? -r : r;
    }
}
