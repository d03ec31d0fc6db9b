using ILGPU;
using ILGPU.Runtime.Cuda;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public class DeviceTensorTests
{
    [Theory]
    [InlineData("cpu", DeviceKind.Cpu)]
    [InlineData("CUDA", DeviceKind.Cuda)]
    [InlineData("ilgpu-cpu", DeviceKind.IlgpuCpu)]
    public void DeviceKindsParseTheCliSpelling(string text, DeviceKind expected) => Assert.Equal(expected, DeviceKinds.Parse(text));

    [Fact]
    public void UnknownDeviceIsAModelException() =>
        Assert.Equal("unknown device 'tpu'; use cpu, cuda or ilgpu-cpu", Assert.Throws<ModelException>(() => DeviceKinds.Parse("tpu")).Message);

    [Fact]
    public void CudaWithoutADeviceSaysSo()
    {
        int devices;
        IlgpuCudaImport.Install(); // before ILGPU first loads the driver: on a driver-only machine it needs libcuda.so.1
        using (Context probe = Context.Create(b => b.Cuda())) devices = probe.GetCudaDevices().Count;
        if (devices == 0)
        {
            // The reason, not just "no device": here, asked of the real driver probe.
            Assert.Equal(CudaDiscovery.WhyNoDevice(new CudaDriverProbe()),
                Assert.Throws<ModelException>(() => ComputeContext.Create(DeviceKind.Cuda)).Message);
        }
        else
        {
            using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cuda);
            Assert.Equal(DeviceKind.Cuda, ctx.Kind);
        }
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void ViewsShareStorageAndUseTheirOffsets(DeviceKind kind)
    {
        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor arena = ctx.Upload([0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 12);
        DeviceTensor matrix = arena.Slice(2, 6, 2, 3);
        Assert.Equal([2, 3], matrix.Shape);
        Assert.Equal([2f, 3, 4, 5, 6, 7], ctx.Download(matrix));
        DeviceTensor row = matrix.Reshape(3, 2).Slice(4, 2, 2);
        Assert.Equal([6f, 7], ctx.Download(row));
        ctx.CopyFrom([-1f, -2f], row);
        Assert.Equal([0f, 1, 2, 3, 4, 5, -1, -2, 8, 9, 10, 11], ctx.Download(arena));

        DeviceTensor ints = arena.Slice(10, 2, 2).AsInt();
        Assert.True(ints.IsInt);
        Assert.Equal([BitConverter.SingleToInt32Bits(10f), BitConverter.SingleToInt32Bits(11f)], ctx.DownloadInt(ints));
        ctx.CopyFrom([7, -8], ints);
        Assert.Equal([7, -8], ctx.DownloadInt(ints));
        using DeviceTensor copy = ctx.Allocate(2, 3);
        ctx.Copy(matrix, copy);
        Assert.Equal([2f, 3, 4, 5, -1, -2], ctx.Download(copy));
        ctx.Clear(matrix.Slice(0, 2, 2));
        Assert.Equal([0f, 0, 4, 5, -1, -2], ctx.Download(matrix));
        Assert.Throws<ArgumentException>(() => matrix.Reshape(4, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => arena.Slice(8, 5, 5));
    }

    [Fact]
    public void StorageAccessorsMatchTheDeviceAndElementType()
    {
        using ComputeContext cpu = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor f = cpu.Allocate(4), i = cpu.UploadInt([1, 2, 3], 3);
        Assert.Equal(4, f.Span.Length);
        Assert.Equal([1, 2, 3], i.IntSpan.ToArray());
        Assert.Throws<InvalidOperationException>(() => f.View);
        Assert.Throws<InvalidOperationException>(() => i.Span.Length);
        Assert.Throws<InvalidOperationException>(() => cpu.Accelerator);

        using ComputeContext sim = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using DeviceTensor g = sim.Allocate(2, 2);
        Assert.Equal(4, g.View.Length);
        Assert.Throws<InvalidOperationException>(() => g.Span.Length);
        Assert.Equal([0f, 0, 0, 0], sim.Download(g));
    }

    [Fact]
    public void DisposingTheOwnerInvalidatesViewsButDisposingAViewDoesNot()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        DeviceTensor owner = ctx.Allocate(4);
        DeviceTensor view = owner.Slice(1, 2, 2);
        view.Dispose();
        Assert.Equal(4, owner.Span.Length);
        owner.Dispose();
        Assert.Throws<ObjectDisposedException>(() => view.Span.Length);
    }
}
