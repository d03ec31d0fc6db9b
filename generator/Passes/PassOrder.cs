namespace Qwen2VL.Generator.Passes;

/// <summary>The passes, in the order the generator runs them (one file each).</summary>
internal static class PassOrder
{
    public static readonly string[] Names =
    {
        "ShapeInference", // symbolic shapes and dtypes; mismatches are build errors
        "Fusion",         // elementwise chains, GEMM epilogues (bias, activation, residual), norm + residual
        "MemoryPlan",     // liveness-based reuse of intermediate buffers
        "Emit",           // ILGPU kernels, CPU kernels, host runner, graph dump
    };
}
