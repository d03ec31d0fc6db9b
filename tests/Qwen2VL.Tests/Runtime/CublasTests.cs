using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>What can be checked without a GPU: library resolution and the device guard.</summary>
public class CublasTests
{
    [Fact]
    public void MissingLibraryNamesEveryCandidate()
    {
        var e = Assert.Throws<ModelException>(() => Cublas.LoadLibrary(["libnot-cublas-a.so.99", "libnot-cublas-b.so"]));
        Assert.Equal("cuBLAS not found (tried libnot-cublas-a.so.99, libnot-cublas-b.so); install cuBLAS or run without cuBLAS", e.Message);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void OnlyTheCudaDeviceCanUseCublas(DeviceKind kind)
    {
        using ComputeContext ctx = ComputeContext.Create(kind);
        Assert.Throws<InvalidOperationException>(ctx.EnableCublas);
        Assert.False(ctx.UsesCublas);
    }
}
