using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// Weights kept in bf16 on the cpu device: <see cref="WeightStore.KeepBf16"/> maps a BF16 tensor in place, the CPU GEMM
/// reads it through the bf16 kernel (with its epilogue), and nothing else may read it as f32.
/// </summary>
public class Bf16WeightStoreTests
{
    private const int N = 37, K = 70, M = 5;

    private static string Checkpoint(TempDirectory dir)
    {
        string path = dir.File("model.safetensors");
        SafetensorsWriter.Write(path,
        [
            SafetensorsEntry.BF16("proj.weight", Reference.Random(N * K, 31), N, K),
            SafetensorsEntry.F32("f32.weight", Reference.Random(N * K, 32), N, K),
            SafetensorsEntry.BF16("norm.weight", Reference.Random(K, 33), K),
        ]);
        return path;
    }

    [Fact]
    public void KeptBf16WeightGivesTheF32GemmResultWithItsEpilogue()
    {
        using var dir = new TempDirectory();
        using WeightStore store = WeightStore.OpenFile(Checkpoint(dir));
        store.KeepBf16 = name => name.EndsWith(".weight", StringComparison.Ordinal) && name != "norm.weight";
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor bf16 = store.Load(ctx, "proj.weight", N, K);
        Assert.True(bf16.IsBf16);
        Assert.Equal(N * K, store.Bf16Elements);
        Assert.Contains("bfloat16", bf16.ToString());
        using DeviceTensor norm = store.Load(ctx, "norm.weight", K), f32Stored = store.Load(ctx, "f32.weight", N, K);
        Assert.False(norm.IsBf16);      // not accepted by the predicate
        Assert.False(f32Stored.IsBf16); // accepted, but stored as F32: widened as before
        Assert.Equal(N * K, store.Bf16Elements);

        float[] a = Reference.Random(M * K, 34), bias = Reference.Random(N, 35), residual = Reference.Random(M * N, 36);
        using DeviceTensor ta = ctx.Upload(a, M, K), widened = ctx.Upload(store.ReadFloat32("proj.weight"), N, K);
        using DeviceTensor fromBf16 = ctx.Allocate(M, N), fromF32 = ctx.Allocate(M, N);
        var epilogue = new CpuBiasResidualEpilogue { Bias = bias, Residual = residual };
        CpuGemm.Run(ta, bf16, fromBf16, M, N, K, epilogue);
        CpuGemm.Run(ta, widened, fromF32, M, N, K, epilogue);
        float[] x = fromBf16.Span.ToArray(), y = fromF32.Span.ToArray();
        for (int i = 0; i < x.Length; i++)
            Assert.True(Math.Abs(x[i] - y[i]) <= 1e-5 * (1 + Math.Abs(y[i])), $"c[{i}]: bf16 weights {x[i]}, widened {y[i]}");
    }

    [Fact]
    public void Bf16TensorsRefuseEveryF32Read()
    {
        using var dir = new TempDirectory();
        using WeightStore store = WeightStore.OpenFile(Checkpoint(dir));
        store.KeepBf16 = _ => true;
        using ComputeContext cpu = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor w = store.Load(cpu, "proj.weight", N, K);
        var e = Assert.Throws<InvalidOperationException>(() => w.Span.ToArray());
        Assert.Contains("bf16 weights", e.Message);
        Assert.Throws<InvalidOperationException>(() => w.AsFloat());
        Assert.Throws<InvalidOperationException>(() => w.AsInt());
        using DeviceTensor c = cpu.Allocate(N, N);
        Assert.Throws<InvalidOperationException>(() => CpuGemm.Run(w, w, c, N, N, K, new NoEpilogue())); // as the activation

        using ComputeContext ilgpu = ComputeContext.Create(DeviceKind.IlgpuCpu);
        using DeviceTensor onIlgpu = store.Load(ilgpu, "proj.weight", N, K);
        Assert.True(onIlgpu.IsBf16); // a 16-bit ILGPU buffer
        Assert.Throws<InvalidOperationException>(() => onIlgpu.View);
        Assert.Throws<InvalidOperationException>(() => ilgpu.WrapBf16(new ushort[4], 2, 2)); // in-place wrapping is cpu-only
        Assert.Throws<ArgumentException>(() => cpu.WrapBf16(new ushort[3], 2, 2));
        Assert.Throws<ArgumentException>(() => ilgpu.UploadBf16(new ushort[3], 2, 2));
    }

    [Fact]
    public void MappedBf16WeightsAreRefusedAfterTheFileIsClosed()
    {
        using var dir = new TempDirectory();
        WeightStore store = WeightStore.OpenFile(Checkpoint(dir));
        store.KeepBf16 = _ => true;
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor w = store.Load(ctx, "proj.weight", N, K);
        store.Dispose();
        using DeviceTensor a = ctx.Allocate(1, K), c = ctx.Allocate(1, N);
        Assert.Throws<ObjectDisposedException>(() => CpuGemm.Run(a, w, c, 1, N, K, new NoEpilogue()));
    }
}
