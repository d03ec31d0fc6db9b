using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Model.Training;

/// <summary>
/// The line <c>train</c> prints at start: the bytes the weights and the optimizer hold (<see cref="ParameterSet.HeldBytes"/>),
/// by buffer. With <c>--bf16</c>: bf16 compute weights + f32 compute copies of the norms, biases and patch conv + f32
/// masters + f32 AdamW moments; without: the f32 weights (which are the masters) + f32 moments. The f32 gradients are
/// shown beside the total, not in it.
/// </summary>
public static class OptimizerMemory
{
    public static long TotalBytes(ParameterSet parameters)
    {
        var b = parameters.HeldBytes;
        return b.Masters + b.Bf16Compute + b.WideCompute + b.Moments;
    }

    public static string Line(ParameterSet parameters)
    {
        var b = parameters.HeldBytes;
        string parts = parameters.Bf16Compute
            ? $"{Size(b.Bf16Compute)} bf16 compute weights + {Size(b.WideCompute)} f32 compute copies of norms, biases and patch conv + {Size(b.Masters)} f32 master weights + {Size(b.Moments)} f32 AdamW moments"
            : $"{Size(b.Masters)} f32 weights (the masters) + {Size(b.Moments)} f32 AdamW moments";
        return $"weights and optimizer: {parts} = {Size(TotalBytes(parameters))} ({TotalBytes(parameters)} bytes; f32 gradients {Size(b.Gradients)} more)";
    }

    private static string Size(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1L << 20):F2} MiB";
}
