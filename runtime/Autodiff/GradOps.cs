using System.Numerics.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Qwen2VL.Runtime;

/// <summary>Small helpers the generated backward passes share: accumulating one gradient into another.</summary>
public static class GradOps
{
    /// <summary>destination += source (same length).</summary>
    public static void Add(ComputeContext ctx, DeviceTensor destination, DeviceTensor source)
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"cannot add {source} into {destination}: lengths differ");
        if (destination.Length == 0)
            return;
        if (ctx.IsCpu)
        {
            TensorPrimitives.Add(destination.Span, source.Span, destination.Span);
            return;
        }
        var kernel = ctx.CachedKernel("grad-add", typeof(float), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(AddKernel));
        kernel(destination.Length, destination.View, source.View);
    }

    private static void AddKernel(Index1D i, ArrayView<float> destination, ArrayView<float> source) => destination[i] += source[i];
}
