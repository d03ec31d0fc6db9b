using ILGPU;
using ILGPU.Runtime.Cuda;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>Each reason for "no CUDA device", simulated through a probe that answers as the driver would.</summary>
public sealed class CudaDiscoveryTests
{
    /// <summary>A driver that answers each question as set; a question asked after a failed step fails the test.</summary>
    private sealed class FakeProbe : ICudaProbe
    {
        public string? Missing;
        public int InitResult;
        public int Version = 13000;
        public int CountResult;
        public CudaDeviceFacts?[] Devices = [];
        public IlgpuDeviceFacts[] Ilgpu = [];
        public string? VisibleDevices { get; set; }
        public List<string> Asked { get; } = [];

        public LoadedNativeLibrary? LoadDriver(out string? error)
        {
            Asked.Add("load");
            error = Missing;
            return Missing is null ? new LoadedNativeLibrary("libcuda", "libcuda.so.1", 1) : null;
        }

        public int Init() { Asked.Add("init"); return InitResult; }

        public int DriverVersion(out int version) { version = Version; return 0; }

        public int DeviceCount(out int count) { Asked.Add("count"); count = Devices.Length; return CountResult; }

        public CudaDeviceFacts? Device(int ordinal) => Devices[ordinal];

        public string? ErrorName(int code) => code switch
        {
            100 => "CUDA_ERROR_NO_DEVICE",
            999 => "CUDA_ERROR_UNKNOWN",
            3 => "CUDA_ERROR_NOT_INITIALIZED",
            _ => null,
        };

        public IReadOnlyList<IlgpuDeviceFacts> IlgpuDevices() { Asked.Add("ilgpu"); return Ilgpu; }
    }

    private static readonly string Ilgpu = typeof(Context).Assembly.GetName().Version!.ToString(3);

    [Fact]
    public void MissingLibrary_SaysSoAndAsksNothingElse()
    {
        var probe = new FakeProbe { Missing = "the CUDA driver library (libcuda) not found: tried libcuda.so.1, libcuda.so …; install the NVIDIA driver, or use --device cpu" };
        Assert.Equal(probe.Missing, CudaDiscovery.WhyNoDevice(probe));
        Assert.Equal(["load"], probe.Asked);
    }

    [Fact]
    public void DriverInitFailure_NamesTheErrorAndItsUsualCause()
    {
        var probe = new FakeProbe { InitResult = 100, VisibleDevices = "7" };
        Assert.Equal("the CUDA driver did not initialise: cuInit returned CUDA_ERROR_NO_DEVICE (100) (no NVIDIA GPU is visible to this process: check nvidia-smi; CUDA_VISIBLE_DEVICES='7'); use --device cpu",
            CudaDiscovery.WhyNoDevice(probe));
        Assert.Equal(["load", "init"], probe.Asked);

        Assert.Equal("the CUDA driver did not initialise: cuInit returned CUDA_ERROR_UNKNOWN (999) (often a driver library that does not match the loaded kernel module, or a GPU in a bad state: check nvidia-smi); use --device cpu",
            CudaDiscovery.WhyNoDevice(new FakeProbe { InitResult = 999 }));
        Assert.Equal("the CUDA driver did not initialise: cuInit returned error (12345); use --device cpu",
            CudaDiscovery.WhyNoDevice(new FakeProbe { InitResult = 12345 }));
    }

    [Fact]
    public void ZeroDevices_GivesTheDriverVersionAndTheVisibleDevices()
    {
        var probe = new FakeProbe { Version = 12040, VisibleDevices = "" };
        Assert.Equal("CUDA driver 12.4 sees no GPU (CUDA_VISIBLE_DEVICES=''); use --device cpu", CudaDiscovery.WhyNoDevice(probe));
        Assert.Equal(["load", "init", "count"], probe.Asked);
        Assert.Equal("CUDA driver 13.0 could not count devices: cuDeviceGetCount returned CUDA_ERROR_NOT_INITIALIZED (3); use --device cpu",
            CudaDiscovery.WhyNoDevice(new FakeProbe { CountResult = 3 }));
    }

    [Fact]
    public void DevicesIlgpuCannotQuery_ListsThemAndSaysIlgpuDroppedThem()
    {
        var probe = new FakeProbe { Devices = [new("NVIDIA H100 80GB HBM3", 9, 0), null] };
        Assert.Equal($"CUDA driver 13.0 lists 2 devices (NVIDIA H100 80GB HBM3 (sm_90), device 1) but ILGPU {Ilgpu} uses none: its own device queries failed (ILGPU hides which; bench/gpu/gpu_probe.py checks each attribute it reads); use --device cpu",
            CudaDiscovery.WhyNoDevice(probe));
        Assert.Equal(["load", "init", "count", "ilgpu"], probe.Asked);
    }

    [Fact]
    public void DevicesIlgpuDoesNotSupport_SayWhichPartIsMissing()
    {
        var probe = new FakeProbe
        {
            Devices = [new("NVIDIA H100", 9, 0), new("NVIDIA B200", 10, 0)],
            Ilgpu = [new("NVIDIA H100", "SM_90", null), new("NVIDIA B200", null, null)],
        };
        Assert.Equal($"CUDA driver 13.0 lists 2 devices (NVIDIA H100 (sm_90), NVIDIA B200 (sm_100)) but ILGPU {Ilgpu} uses none: NVIDIA H100 (SM_90): it knows no PTX ISA for this architecture with driver 13.0; NVIDIA B200: it knows no such architecture; use --device cpu",
            CudaDiscovery.WhyNoDevice(probe));
    }

    [Fact]
    public void CreatingACudaContext_WithoutADeviceThrowsTheProbesReason()
    {
        int devices;
        IlgpuCudaImport.Install(); // before ILGPU first loads the driver: on a driver-only machine it needs libcuda.so.1
        using (Context context = Context.Create(b => b.Cuda())) devices = context.GetCudaDevices().Count;
        var probe = new FakeProbe { InitResult = 100 };
        if (devices == 0)
        {
            var e = Assert.Throws<ModelException>(() => ComputeContext.CreateCuda(probe));
            Assert.Equal(CudaDiscovery.WhyNoDevice(new FakeProbe { InitResult = 100 }), e.Message);
        }
        else
        {
            // With a GPU the probe is not consulted, and the context runs on its own stream, not the legacy null stream.
            using ComputeContext ctx = ComputeContext.CreateCuda(probe);
            Assert.Empty(probe.Asked);
            Assert.NotEqual(IntPtr.Zero, ((CudaStream)ctx.Accelerator.DefaultStream).StreamPtr);
        }
    }

    [Fact]
    public void TheRealProbeWithoutADriverLibrary_ReportsTheLibrarySearch()
    {
        var search = new NativeLibrarySearch("the CUDA driver library (libcuda)", ["libqvl-no-cuda.so.1"], [], "install the NVIDIA driver, or use --device cpu");
        Assert.Equal("the CUDA driver library (libcuda) not found: tried libqvl-no-cuda.so.1 on the system loader's path; install the NVIDIA driver, or use --device cpu",
            CudaDiscovery.WhyNoDevice(new CudaDriverProbe(search)));
    }

    [Fact]
    public void DriverVersionsReadAsMajorDotMinor()
    {
        Assert.Equal("13.0", CudaDiscovery.FormatVersion(13000));
        Assert.Equal("12.4", CudaDiscovery.FormatVersion(12040));
        Assert.Equal("12.10", CudaDiscovery.FormatVersion(12100)); // not "12.1": the minor is (v % 1000) / 10
    }
}
