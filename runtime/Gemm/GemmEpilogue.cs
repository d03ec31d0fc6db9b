namespace Qwen2VL.Runtime;

/// <summary>
/// What a GPU GEMM does with each finished accumulator before storing it (bias, activation, residual...).
/// Implemented by generated structs that hold <c>ArrayView&lt;float&gt;</c> fields; the struct is a generic
/// kernel parameter, so the call is inlined into the kernel.
/// </summary>
public interface IGemmEpilogue
{
    float Apply(int row, int col, float acc);
}

/// <summary>The CPU counterpart: applied once to each finished row of c (<paramref name="row"/> is the global row).</summary>
public interface ICpuGemmEpilogue
{
    void ApplyRow(int row, Span<float> c);
}

/// <summary>Stores the plain product.</summary>
public struct NoEpilogue : IGemmEpilogue, ICpuGemmEpilogue
{
    public readonly float Apply(int row, int col, float acc) => acc;

    public readonly void ApplyRow(int row, Span<float> c) { }
}
