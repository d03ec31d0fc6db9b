namespace Qwen2VL.Dsl;

/// <summary>Scalar functions the reference ops need and <see cref="Math"/> lacks.</summary>
public static class SpecialFunctions
{
    /// <summary>
    /// The error function in double precision (absolute error well below 1e-14).
    /// Uses the everywhere-convergent series erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)),
    /// whose terms are all positive (no cancellation, unlike the Taylor series), and erf(x) = ±1 for |x| ≥ 6,
    /// where 1 − erf(6) ≈ 2e-17 is below double resolution.
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        if (ax >= 6.0) return Math.Sign(x);
        double x2 = ax * ax;
        double term = ax, sum = ax;
        for (int n = 1; n < 500; n++)
        {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (term < 1e-17 * sum) break;
        }
        double r = 2.0 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
        return x < 0 ? -r : r;
    }
}
