using System.Diagnostics;
using System.Text;
using ILGPU;
using ILGPU.Runtime.Cuda;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// The driver's JIT log reaches the error message. The failure is simulated the way ILGPU 1.5.3's CudaKernel reports
/// it: the marker and the log written to Trace, then a CudaException.
/// </summary>
public sealed class PtxJitLogTests
{
    private const string DriverLog = "ptxas application ptx input, line 7; error   : Unknown symbol 'qvl'\nptxas fatal   : Ptx assembly aborted due to errors\0\0\0\0";

    [Fact]
    public void IlgpuStillTracesTheLogAfterTheMarker()
    {
        // The listener keys on ILGPU's literal; an ILGPU upgrade that rewords it must fail here, not go quiet on a GPU.
        byte[] assembly = File.ReadAllBytes(typeof(Context).Assembly.Location);
        byte[] marker = Encoding.Unicode.GetBytes(PtxJitLog.Marker);
        Assert.True(assembly.AsSpan().IndexOf(marker) >= 0, $"ILGPU no longer contains \"{PtxJitLog.Marker}\"");
    }

    [Fact]
    public void AKernelTheDriverRefuses_FailsWithTheJitLogInOneLine()
    {
        PtxJitLog.Install();
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.IlgpuCpu);

        var e = Assert.Throws<KernelLoadException>(() => ctx.CachedKernel<Action>("qvl-bad-kernel", typeof(int), _ =>
        {
            Trace.WriteLine(PtxJitLog.Marker);
            Trace.WriteLine(DriverLog);
            throw new CudaException("a PTX JIT compilation failed");
        }));

        Assert.Equal("loading kernel qvl-bad-kernel on CUDA failed: CUDA error N/A: a PTX JIT compilation failed; " +
                     "PTX JIT log: ptxas application ptx input, line 7; error   : Unknown symbol 'qvl' | ptxas fatal   : Ptx assembly aborted due to errors",
            e.Message);
        Assert.IsType<CudaException>(e.InnerException);
        Assert.Null(PtxJitLog.TakeLast()); // consumed by the message: a later, unrelated error does not repeat it
    }

    [Fact]
    public void ACudaErrorWithoutAJitLog_IsDescribedWithoutOne()
    {
        PtxJitLog.Install();
        Trace.WriteLine("an unrelated trace line");
        Assert.Equal("CUDA error N/A: an illegal memory access was encountered", PtxJitLog.Describe(new CudaException("an illegal memory access was encountered")));
    }

    [Fact]
    public void ALogWrittenOnAnotherThread_IsNotAttachedHere()
    {
        PtxJitLog.Install();
        var other = new Thread(() =>
        {
            Trace.WriteLine(PtxJitLog.Marker);
            Trace.WriteLine(DriverLog);
        });
        other.Start();
        other.Join();
        Assert.Null(PtxJitLog.TakeLast());
    }
}
