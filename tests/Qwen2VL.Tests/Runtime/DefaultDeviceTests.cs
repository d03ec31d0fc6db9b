using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public sealed class DefaultDeviceTests
{
    [Fact]
    public void DefaultIsCudaOnlyWhenAGpuIsVisible()
    {
        // CI machines have no GPU: the default must fall back to the CPU without throwing.
        var kind = ComputeContext.DefaultKind();
        using var ctx = ComputeContext.CreateDefault();
        Assert.Equal(kind, ctx.Kind);
        Assert.True(kind is DeviceKind.Cpu or DeviceKind.Cuda);
        if (!File.Exists("/dev/nvidia0"))
            Assert.Equal(DeviceKind.Cpu, kind);
    }
}
