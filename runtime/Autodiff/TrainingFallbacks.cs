using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

/// <summary>
/// TEMPORARY plain versions of the training primitives (GEMM variants, column sums, attention backward) until the
/// runtime's optimised ones land; instance methods of <see cref="ComputeContext"/> with the same signatures take
/// precedence over these extension methods. Correct, not fast: the GPU forms go through the host.
/// </summary>
public static class TrainingFallbacks
{
    /// <summary>c[m,n] (+)= a[m,k]·b[k,n].</summary>
    public static void GemmNN(this ComputeContext ctx, DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate) =>
        OnHost(ctx, [a, b], c, accumulate, (x, y, z) =>
        {
            Parallel.For(0, m, i =>
            {
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double)x[0][i * k + p] * y[p * n + j];
                    z[i * n + j] += (float)s;
                }
            });
        }, x => x[1]);

    /// <summary>c[m,n] (+)= aᵀ·b with a[k,m], b[k,n].</summary>
    public static void GemmTN(this ComputeContext ctx, DeviceTensor a, DeviceTensor b, DeviceTensor c, int m, int n, int k, bool accumulate) =>
        OnHost(ctx, [a, b], c, accumulate, (x, y, z) =>
        {
            Parallel.For(0, m, i =>
            {
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double)x[0][p * m + i] * y[p * n + j];
                    z[i * n + j] += (float)s;
                }
            });
        }, x => x[1]);

    /// <summary>c[cols] (+)= Σ_rows a[rows, cols].</summary>
    public static void ColumnSum(this ComputeContext ctx, DeviceTensor a, DeviceTensor c, int rows, int cols, bool accumulate) =>
        OnHost(ctx, [a], c, accumulate, (x, _, z) =>
        {
            for (int j = 0; j < cols; j++)
            {
                double s = 0;
                for (int r = 0; r < rows; r++) s += x[0][r * cols + j];
                z[j] += (float)s;
            }
        }, _ => []);

    private static void OnHost(ComputeContext ctx, DeviceTensor[] inputs, DeviceTensor c, bool accumulate,
        Action<float[][], float[], float[]> body, Func<float[][], float[]> second)
    {
        var host = inputs.Select(t => ctx.Download(t)).ToArray();
        var result = accumulate ? ctx.Download(c) : new float[c.Length];
        body(host, second(host), result);
        ctx.CopyFrom(result, c);
    }
}
