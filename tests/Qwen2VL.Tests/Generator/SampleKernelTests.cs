using Qwen2VL.Dsl;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Generator.Samples;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// The generated kernels of the DSL samples (elementwise chains with broadcasting, norm + residual, linear epilogue,
/// softmax, transpose, select, concat, embedding, views) against the ops' float64 reference: each sample's Forward
/// run as plain C# versus its generated Runner, on the CPU kernels and on the ILGPU kernels (CPU accelerator).
/// Inputs are random and fresh for every run.
/// </summary>
public sealed class SampleKernelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-samples-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void Gate(DeviceKind device)
    {
        var config = new Dictionary<string, double> { ["width"] = 24 };
        var weights = new Dictionary<string, (float[], int[])> { ["scale"] = Random(24), ["shift"] = Random(24) };
        var (x, y) = (Random(5, 24), Random(5, 24));
        Check(device, config, weights,
            m => ((Gate)m).Forward(T(x), T(y)),
            (ctx, w, c) => new Gate.Runner(ctx, w, c).Forward(Up(ctx, x), Up(ctx, y)),
            new Gate());
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void Residual(DeviceKind device)
    {
        var config = new Dictionary<string, double> { ["hidden"] = 20 };
        var weights = new Dictionary<string, (float[], int[])>
        {
            ["norm.weight"] = Random(20), ["ln.weight"] = Random(20), ["ln.bias"] = Random(20), ["proj.weight"] = Random(20, 20),
        };
        var (x, update) = (Random(7, 20), Random(7, 20));
        Check(device, config, weights,
            m => ((Residual)m).Forward(T(x), T(update)),
            (ctx, w, c) => new Residual.Runner(ctx, w, c).Forward(Up(ctx, x), Up(ctx, update)),
            new Residual());
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void Mixer(DeviceKind device)
    {
        var config = new Dictionary<string, double> { ["heads"] = 4, ["width"] = 16, ["vocab"] = 11 };
        var weights = new Dictionary<string, (float[], int[])> { ["embed"] = Random(11, 16) };
        var x = Random(6, 16);
        var ids = Enumerable.Range(0, 6).Select(_ => Rng.Next(11)).ToArray();
        Check(device, config, weights,
            m => ((Mixer)m).Forward(T(x), Tensor.FromInt64(ids.Select(i => (long)i).ToArray(), 6)),
            (ctx, w, c) => new Mixer.Runner(ctx, w, c).Forward(Up(ctx, x), ctx.UploadInt(ids, 6)),
            new Mixer());
    }

    /// <summary>
    /// Non-default [Const] values (eps 0.3 changes the norm visibly, temperature 1.7 has no default) reach the generated
    /// kernels through the runner; <c>mix</c> is absent and takes its default 0.25 on both sides.
    /// </summary>
    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void Tempered(DeviceKind device)
    {
        var config = new Dictionary<string, double> { ["width"] = 24, ["norm_eps"] = 0.3, ["temperature"] = 1.7 };
        var weights = new Dictionary<string, (float[], int[])> { ["norm.weight"] = Random(24) };
        var x = Random(5, 24);
        var module = new Tempered();
        Check(device, config, weights,
            m => ((Tempered)m).Forward(T(x)),
            (ctx, w, c) => new Tempered.Runner(ctx, w, c).Forward(Up(ctx, x)),
            module);
        Assert.Equal((0.3f, 1.7f, 0.25f), (module.Eps, module.Temperature, module.Mix));
    }

    [Fact]
    public void AConstWithoutDefaultNeedsItsConfigKey()
    {
        var config = new Dictionary<string, double> { ["width"] = 24 };
        var (ctx, store, cfg) = Load(DeviceKind.Cpu, config, new() { ["norm.weight"] = Random(24) });
        using (ctx)
        using (store)
            Assert.Contains("temperature", Assert.ThrowsAny<Exception>(() => new Tempered.Runner(ctx, store, cfg)).Message);
        Assert.Contains("temperature", Assert.Throws<ModuleBindingException>(() => ModuleBinder.Bind(new Tempered(),
            k => config.TryGetValue(k, out var v) ? v : null, _ => null, "")).Message);
    }

    [Fact]
    public void EmbeddingRejectsAnIdOutsideTheVocabularyOnTheCpu()
    {
        var config = new Dictionary<string, double> { ["heads"] = 4, ["width"] = 16, ["vocab"] = 11 };
        var (ctx, store, cfg) = Load(DeviceKind.Cpu, config, new() { ["embed"] = Random(11, 16) });
        using (ctx)
        using (store)
        {
            var error = Assert.Throws<ModelException>(() => new Mixer.Runner(ctx, store, cfg).Forward(Up(ctx, Random(2, 16)), ctx.UploadInt(new[] { 3, 11 }, 2)));
            Assert.Contains("11", error.Message);
        }
    }

    /// <summary>
    /// 64-bit index arithmetic: at hidden = heads = kv_heads = 2^16 the value is [2, 65536], but the product
    /// N·Hidden·KvHeads formed before dividing by Heads is 2^33; in 32 bits it wrapped to 0 and the kernel ran on no
    /// element. The runner forms such products in 64 bits (issue 9; the decoder's B·Hidden·KvHeads·S reaches 2^31 at 72B, 32K tokens).
    /// </summary>
    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void Grouped(DeviceKind device)
    {
        var config = new Dictionary<string, double> { ["hidden"] = 65536, ["heads"] = 65536, ["kv_heads"] = 65536 };
        var x = Random(2, 65536);
        Check(device, config, new(),
            m => ((Grouped)m).Forward(T(x)),
            (ctx, w, c) => new Grouped.Runner(ctx, w, c).Forward(Up(ctx, x)),
            new Grouped());
    }

    private void Check(DeviceKind device, Dictionary<string, double> config, Dictionary<string, (float[] Data, int[] Shape)> weights,
        Func<object, Tensor> reference, Func<ComputeContext, WeightStore, ModelConfig, DeviceTensor> generated, object module)
    {
        ModuleBinder.Bind(module, k => config.TryGetValue(k, out var v) ? v : null,
            k => weights.TryGetValue(k, out var w) ? (w.Shape, w.Data.Select(f => (double)f).ToArray()) : null, "");
        var expected = reference(module);
        var (ctx, store, cfg) = Load(device, config, weights);
        using (ctx)
        using (store)
        {
            var result = generated(ctx, store, cfg);
            Assert.Equal(expected.Shape, result.Shape);
            var actual = ctx.Download(result);
            var want = expected.Data.Select(d => (float)d).ToArray();
            Pipeline.Compare.Close($"{module.GetType().Name} ({device})", result.Shape, actual, want, 2e-5);
        }
    }

    private (ComputeContext, WeightStore, ModelConfig) Load(DeviceKind device, Dictionary<string, double> config, Dictionary<string, (float[] Data, int[] Shape)> weights)
    {
        var path = Path.Combine(_dir, Guid.NewGuid() + ".safetensors");
        SafetensorsWriter.Write(path, weights.Select(w => SafetensorsEntry.F32(w.Key, w.Value.Data, w.Value.Shape.Select(d => (long)d).ToArray())).ToList());
        var json = "{" + string.Join(", ", config.Select(c => $"\"{c.Key}\": {c.Value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}")) + "}";
        return (ComputeContext.Create(device), WeightStore.OpenFile(path), ModelConfig.Parse(json, "config.json"));
    }

    private static readonly Random Rng = new();

    private static (float[], int[]) Random(params int[] shape) =>
        (Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(Rng.NextDouble() * 2 - 1)).ToArray(), shape);

    private static Tensor T((float[] Data, int[] Shape) t) => Tensor.FromFloat(t.Data, t.Shape);

    private static DeviceTensor Up(ComputeContext ctx, (float[] Data, int[] Shape) t) => ctx.Upload(t.Data, t.Shape);
}
