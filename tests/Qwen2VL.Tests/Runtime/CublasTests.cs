using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>What can be checked without a GPU: library resolution and the device guard.</summary>
public class CublasTests
{
    [Fact]
    public void CublasIsVersion13Or12_AndItsMessageNamesTheNamesAndPlaces()
    {
        NativeLibrarySearch search = NativeLibraries.Cublas(name => name == "HOME" ? "/nonexistent-qvl-home" : null);
        Assert.Equal(["libcublas.so.13", "libcublas.so.12"], search.FileNames);
        Assert.Contains("/usr/local/cuda/lib64", search.Directories);
        var e = Assert.Throws<NativeLibraryNotFoundException>(() => search.Load(_ => throw new DllNotFoundException("absent")));
        Assert.StartsWith("cuBLAS not found: tried libcublas.so.13, libcublas.so.12 on the system loader's path and in /usr/local/cuda/lib64, ", e.Message);
        Assert.EndsWith("install cuBLAS (CUDA toolkit, or pip install nvidia-cublas) or run without cuBLAS", e.Message);
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
