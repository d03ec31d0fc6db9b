using ILGPU.Runtime;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// Replacing an accelerator's default stream, as the CUDA context does with its own stream, checked on ILGPU's CPU
/// accelerator (the same Accelerator code path; CUDA itself awaits a GPU).
/// </summary>
public sealed class DeviceStreamsTests
{
    [Fact]
    public void WorkAfterTheSwapRunsOnTheNewStreamWithTheSameResults()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using DeviceTensor a = ctx.Upload([1f, 2, 3, 4, 5, 6], 2, 3);
        using DeviceTensor w = ctx.Upload([1f, 0, -1, 2, 1, 0.5f], 2, 3);
        using DeviceTensor c = ctx.Allocate(2, 2);
        ctx.Gemm(a, w, c, 2, 2, 3); // the launcher is loaded before the swap, launched again after it
        float[] before = ctx.Download(c);

        AcceleratorStream original = ctx.Accelerator.DefaultStream;
        AcceleratorStream own = ctx.Accelerator.CreateStream();
        DeviceStreams.UseAsDefault(ctx.Accelerator, own);

        Assert.Same(own, ctx.Accelerator.DefaultStream);
        Assert.NotSame(original, ctx.Accelerator.DefaultStream);
        ctx.Clear(c);
        Assert.Equal([0f, 0, 0, 0], ctx.Download(c));
        ctx.Gemm(a, w, c, 2, 2, 3);
        Assert.Equal([-2f, 5.5f, -2, 16], ctx.Download(c));
        Assert.Equal(before, ctx.Download(c));
    }

    [Fact]
    public void AStreamOfAnotherAccelerator_IsRefused()
    {
        using ComputeContext one = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using ComputeContext two = ComputeContext.Create(DeviceKind.IlgpuCpu);
        Assert.Throws<ArgumentException>(() => DeviceStreams.UseAsDefault(one.Accelerator, two.Accelerator.CreateStream()));
    }
}
