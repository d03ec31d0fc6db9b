namespace Qwen2VL.Runtime;

/// <summary>Scalar math shared by ILGPU kernels and CPU kernels (plain arithmetic only, so every backend compiles it identically).</summary>
public static class KernelMath
{
    /// <summary>
    /// The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, for the exact (non-tanh) GELU.
    /// Uses the everywhere-convergent series erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)),
    /// whose terms are all positive, so evaluating it in double loses nothing to cancellation and the
    /// float result is correctly rounded or one ulp off. Beyond |x| = 4, 1 − erf(x) < 2e-8, below half a
    /// float ulp of 1, so ±1 is returned. Double arithmetic costs little here: erf only appears in the
    /// vision merger's GELU, a small fraction of the model's work. Only + − × ÷ are used (e^(−x²) included),
    /// so CPU and every ILGPU backend compute the same bits without depending on a backend's exp accuracy.
    /// </summary>
    public static float Erf(float x)
    {
        double ax = x < 0 ? -(double)x : x;
        if (!(ax < 4.0)) // also catches NaN, which stays NaN below
            return float.IsNaN(x) ? x : (x < 0 ? -1f : 1f);
        double x2 = ax * ax;
        double term = ax, sum = ax;
        // Terms grow while 2x²/(2n+1) > 1 (n < x²), then shrink geometrically; 200 bounds |x| < 4 with margin.
        for (int n = 1; n < 200; n++)
        {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (term < sum * 1e-17) break;
        }
        const double TwoOverSqrtPi = 1.1283791670955126;
        double result = TwoOverSqrtPi * ExpNegative(x2) * sum;
        return (float)(x < 0 ? -result : result);
    }

    /// <summary>
    /// e^(−y) for 0 ≤ y &lt; 16 in double: y = k·ln2 + r with |r| ≤ ln2/2, e^(−r) by its Taylor series
    /// (degree 14: remainder below 1e-17), then division by 2^k (exact, k ≤ 24).
    /// </summary>
    private static double ExpNegative(double y)
    {
        const double Ln2 = 0.69314718055994531;
        int k = (int)(y / Ln2 + 0.5);
        double r = y - k * Ln2;
        double term = 1.0, sum = 1.0;
        for (int n = 1; n <= 14; n++)
        {
            term *= -r / n;
            sum += term;
        }
        return sum / (1L << k);
    }

    /// <summary>Exact GELU: x · ½ · (1 + erf(x / √2)).</summary>
    public static float Gelu(float x) => 0.5f * x * (1f + Erf(x * 0.70710678118654752f));
}
