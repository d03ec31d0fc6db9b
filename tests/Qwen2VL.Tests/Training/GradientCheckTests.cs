using Qwen2VL.Dsl;
using Qwen2VL.Model.Decoder;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Generator.Samples;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training;

/// <summary>
/// The generated backward passes against finite differences of the float64 reference: for loss = Σ out ⊙ r (r
/// random), the gradients of sampled parameter and input entries from <c>Runner.Backward</c> (CPU kernels and ILGPU
/// kernels) equal (L(w + h) − L(w − h)) / 2h computed by running the DSL modules as plain C# in float64. Together the
/// samples and the model's modules cover every op's backward kernel.
/// </summary>
public sealed class GradientCheckTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-grad-").FullName;
    private readonly Random _rng = new(20261124);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string, DeviceKind, bool> Cases()
    {
        var data = new TheoryData<string, DeviceKind, bool>();
        foreach (var name in new[] { "Gate", "Residual", "Mixer", "Tempered", "VisionBlock", "DecoderLayer", "DecoderLayerConsts", "PatchMerger", "VisionTower" })
        {
            data.Add(name, DeviceKind.Cpu, false);
            data.Add(name, DeviceKind.IlgpuCpu, false);
            // With recomputation: every module here has norms, activations, softmax or rotary to recompute.
            data.Add(name, DeviceKind.Cpu, true);
            data.Add(name, DeviceKind.IlgpuCpu, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesFiniteDifferences(string name, DeviceKind device, bool recompute)
    {
        var c = Build(name);
        ModuleBinder.Bind(c.Module, k => c.Config.TryGetValue(k, out var v) ? v : null,
            k => c.Weights.TryGetValue(k, out var w) ? (w.Shape, w.Data) : null, "");
        var r = Random(c.OutputLength);

        using var ctx = ComputeContext.Create(device);
        var path = Path.Combine(_dir, name + ".safetensors");
        SafetensorsWriter.Write(path, c.Weights.Select(w => SafetensorsEntry.F32(w.Key, w.Value.Data.Select(x => (float)x).ToArray(),
            w.Value.Shape.Select(d => (long)d).ToArray())).ToList());
        using var store = WeightStore.OpenFile(path);
        var config = ModelConfig.Parse(Nest(c.Config.Select(kv => (kv.Key.Split('.'), kv.Value)).ToList()), "config.json");
        using var grads = new GradientMap(ctx);
        foreach (var (key, value) in c.Weights)
            grads.Declare(key, value.Shape);
        var uploads = c.Inputs.Select(t => t.DType == DType.I64
            ? ctx.UploadInt(t.Data.Select(x => (int)x).ToArray(), t.Shape)
            : ctx.Upload(t.Data.Select(x => (float)x).ToArray(), t.Shape)).ToArray();
        var (forwardTrain, backward) = c.Runner(ctx, store, config, recompute);
        var output = forwardTrain(uploads);
        Assert.Equal(c.OutputLength, output.Length);
        var inputGrads = backward(ctx.Upload(r.Select(x => (float)x).ToArray(), output.Shape), grads);

        double Loss()
        {
            var y = c.Reference(c.Module, c.Inputs);
            double s = 0;
            for (var i = 0; i < y.Data.Length; i++) s += y.Data[i] * r[i];
            return s;
        }

        var worst = 0.0;
        void CheckEntry(string what, double[] data, int index, float analytic)
        {
            const double h = 1e-3;
            var saved = data[index];
            data[index] = saved + h;
            var up = Loss();
            data[index] = saved - h;
            var down = Loss();
            data[index] = saved;
            var numeric = (up - down) / (2 * h);
            var error = Math.Abs(analytic - numeric) / Math.Max(1.0, Math.Abs(numeric));
            worst = Math.Max(worst, error);
            Assert.True(error < 2e-3, $"{name} ({device}, recompute {recompute}) d loss / d {what}[{index}]: backward {analytic}, finite difference {numeric}");
        }

        foreach (var (key, value) in c.Weights)
        {
            var grad = grads.Gradients.TryGetValue(key, out var g) ? ctx.Download(g) : null;
            Assert.True(grad is not null, $"{name}: no gradient for parameter {key}");
            var data = c.ParamData(c.Module, key);
            foreach (var index in Sample(data.Length, 4))
                CheckEntry(key, data, index, grad![index]);
        }
        for (var i = 0; i < c.Inputs.Length; i++)
        {
            if (c.Inputs[i].DType == DType.I64)
            {
                Assert.Null(inputGrads[i]);
                continue;
            }
            var grad = ctx.Download(inputGrads[i]!);
            foreach (var index in Sample(c.Inputs[i].Data.Length, 4))
                CheckEntry($"input {i}", c.Inputs[i].Data, index, grad[index]);
        }
        log.WriteLine($"{name} ({device}, recompute {recompute}): worst relative error {worst:E2}");
    }

    /// <summary>Dotted keys as nested JSON ("a.b": 1 → {"a": {"b": 1}}; numeric segments become arrays).</summary>
    private static string Nest(List<(string[] Path, double Value)> entries)
    {
        if (entries.Count == 1 && entries[0].Path.Length == 0)
            return entries[0].Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var groups = entries.GroupBy(e => e.Path[0]).ToList();
        string Child(IGrouping<string, (string[] Path, double Value)> g) => Nest(g.Select(e => (e.Path[1..], e.Value)).ToList());
        if (groups.All(g => int.TryParse(g.Key, out _)))
            return "[" + string.Join(", ", groups.OrderBy(g => int.Parse(g.Key)).Select(Child)) + "]";
        return "{" + string.Join(", ", groups.Select(g => $"\"{g.Key}\": {Child(g)}")) + "}";
    }

    private IEnumerable<int> Sample(int length, int count) => Enumerable.Range(0, count).Select(_ => _rng.Next(length)).Distinct();

    private double[] Random(int length) => Enumerable.Range(0, length).Select(_ => _rng.NextDouble() * 2 - 1).ToArray();

    private Tensor RandomTensor(params int[] shape) => Tensor.FromDouble(Random(shape.Aggregate(1, (a, b) => a * b)), shape);

    private sealed record Case(
        object Module,
        Dictionary<string, double> Config,
        Dictionary<string, (int[] Shape, double[] Data)> Weights,
        Tensor[] Inputs,
        int OutputLength,
        Func<object, Tensor[], Tensor> Reference,
        Func<object, string, double[]> ParamData,
        Func<ComputeContext, WeightStore, ModelConfig, bool, (Func<DeviceTensor[], DeviceTensor>, Func<DeviceTensor, IGradientSink, DeviceTensor?[]>)> Runner);

    private Dictionary<string, (int[] Shape, double[] Data)> Weights(params (string Name, int[] Shape)[] specs) =>
        specs.ToDictionary(s => s.Name, s => (s.Shape, Random(s.Shape.Aggregate(1, (a, b) => a * b)).Select(x => x * 0.5 + (s.Name.Contains("norm") || s.Name.EndsWith("ln_q.weight") || s.Name.EndsWith("layernorm.weight") ? 1.0 : 0.0)).ToArray()));

    /// <summary>A parameter's float64 storage inside the bound reference module (found by its checkpoint name).</summary>
    private static double[] ParamOf(object module, string name)
    {
        foreach (var field in module.GetType().GetFields())
        {
            var param = field.GetCustomAttributes(typeof(ParamAttribute), false).Cast<ParamAttribute>().FirstOrDefault();
            if (param is not null && param.CheckpointName == name)
                return ((Tensor)field.GetValue(module)!).Data;
            var sub = field.GetCustomAttributes(typeof(SubmoduleAttribute), false).Cast<SubmoduleAttribute>().FirstOrDefault();
            if (sub is null || !name.StartsWith(sub.CheckpointPrefix + ".", StringComparison.Ordinal))
                continue;
            var rest = name.Substring(sub.CheckpointPrefix.Length + 1);
            if (field.GetValue(module) is Array array)
            {
                var dot = rest.IndexOf('.');
                return ParamOf(array.GetValue(int.Parse(rest[..dot]))!, rest[(dot + 1)..]);
            }
            return ParamOf(field.GetValue(module)!, rest);
        }
        throw new InvalidOperationException($"no parameter {name} in {module.GetType().Name}");
    }

    private Case Build(string name)
    {
        switch (name)
        {
            case "Gate":
                return new Case(new Gate(), new() { ["width"] = 12 }, Weights(("scale", [12]), ("shift", [12])),
                    [RandomTensor(3, 12), RandomTensor(3, 12)], 36,
                    (m, i) => ((Gate)m).Forward(i[0], i[1]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new Gate.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0], i[1]), r.Backward); });
            case "Residual":
                return new Case(new Residual(), new() { ["hidden"] = 10 },
                    Weights(("norm.weight", [10]), ("ln.weight", [10]), ("ln.bias", [10]), ("proj.weight", [10, 10])),
                    [RandomTensor(4, 10), RandomTensor(4, 10)], 40,
                    (m, i) => ((Residual)m).Forward(i[0], i[1]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new Residual.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0], i[1]), r.Backward); });
            case "Mixer":
                return new Case(new Mixer(), new() { ["heads"] = 2, ["width"] = 8, ["vocab"] = 5 }, Weights(("embed", [5, 8])),
                    [RandomTensor(3, 8), Tensor.FromInt64([4, 1, 4], 3)], 3 * 12,
                    (m, i) => ((Mixer)m).Forward(i[0], i[1]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new Mixer.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0], i[1]), r.Backward); });
            case "Tempered":
                // Non-default consts: the backward kernels (norm eps, the Scale gradients) take them as arguments too.
                return new Case(new Tempered(), new() { ["width"] = 12, ["norm_eps"] = 0.3, ["temperature"] = 1.7, ["mix"] = -0.6 },
                    Weights(("norm.weight", [12])), [RandomTensor(3, 12)], 36,
                    (m, i) => ((Tempered)m).Forward(i[0]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new Tempered.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0]), r.Backward); });
            case "VisionBlock":
            {
                var pos = Tensor.FromInt64([0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1], 6, 2);
                return new Case(new VisionBlock(), new() { ["vision_config.embed_dim"] = 8, ["vision_config.num_heads"] = 2, ["vision_config.mlp_ratio"] = 2 },
                    Weights(("norm1.weight", [8]), ("norm1.bias", [8]), ("attn.qkv.weight", [24, 8]), ("attn.qkv.bias", [24]),
                        ("attn.proj.weight", [8, 8]), ("attn.proj.bias", [8]), ("norm2.weight", [8]), ("norm2.bias", [8]),
                        ("mlp.fc1.weight", [16, 8]), ("mlp.fc1.bias", [16]), ("mlp.fc2.weight", [8, 16]), ("mlp.fc2.bias", [8])),
                    [RandomTensor(6, 8), pos, Tensor.FromInt64([0, 4, 6], 3)], 48,
                    (m, i) => ((VisionBlock)m).Forward(i[0], i[1], i[2]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new VisionBlock.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0], i[1], i[2]), r.Backward); });
            }
            case "DecoderLayer" or "DecoderLayerConsts":
            {
                // Batch 2, row 1 with a hole in its mask (a padded key). No query row is fully masked here: for those,
                // transformers' autograd gives q and k a gradient through the uniform softmax (score + float32-min has
                // derivative 1) although the output does not depend on them, which a finite difference cannot see; the
                // fixture gradients (case b) check that path.
                var pos = Tensor.FromInt64([0, 1, 2, 1, 0, 1, 0, 1, 2, 1, 0, 1, 0, 1, 2, 1, 0, 1], 3, 2, 3);
                var config = new Dictionary<string, double> { ["hidden_size"] = 8, ["num_attention_heads"] = 2, ["num_key_value_heads"] = 1, ["intermediate_size"] = 12,
                        ["rope_scaling.mrope_section.0"] = 1, ["rope_scaling.mrope_section.1"] = 1, ["rope_scaling.mrope_section.2"] = 0 };
                // DecoderLayerConsts: rope_theta and rms_norm_eps away from their defaults (1e6, 1e-6) reach ForwardTrain and Backward.
                if (name == "DecoderLayerConsts")
                {
                    config["rope_theta"] = 10;
                    config["rms_norm_eps"] = 0.05;
                }
                return new Case(new DecoderLayer(), config,
                    Weights(("input_layernorm.weight", [8]), ("self_attn.q_proj.weight", [8, 8]), ("self_attn.q_proj.bias", [8]),
                        ("self_attn.k_proj.weight", [4, 8]), ("self_attn.k_proj.bias", [4]), ("self_attn.v_proj.weight", [4, 8]),
                        ("self_attn.v_proj.bias", [4]), ("self_attn.o_proj.weight", [8, 8]), ("post_attention_layernorm.weight", [8]),
                        ("mlp.gate_proj.weight", [12, 8]), ("mlp.up_proj.weight", [12, 8]), ("mlp.down_proj.weight", [8, 12])),
                    [RandomTensor(2, 3, 8), pos, Tensor.FromInt64([1, 1, 1, 1, 0, 1], 2, 3)], 48,
                    (m, i) => ((DecoderLayer)m).Forward(i[0], i[1], i[2]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new DecoderLayer.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0], i[1], i[2]), r.Backward); });
            }
            case "PatchMerger":
                return new Case(new PatchMerger(), new() { ["vision_config.embed_dim"] = 4, ["vision_config.spatial_merge_size"] = 2, ["vision_config.hidden_size"] = 6 },
                    Weights(("ln_q.weight", [4]), ("ln_q.bias", [4]), ("mlp.0.weight", [16, 16]), ("mlp.0.bias", [16]), ("mlp.2.weight", [6, 16]), ("mlp.2.bias", [6])),
                    [RandomTensor(8, 4)], 12,
                    (m, i) => ((PatchMerger)m).Forward(i[0]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new PatchMerger.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0]), r.Backward); });
            case "VisionTower":
            {
                var config = new Dictionary<string, double>
                {
                    ["vision_config.embed_dim"] = 8, ["vision_config.depth"] = 2, ["vision_config.num_heads"] = 2, ["vision_config.mlp_ratio"] = 2,
                    ["vision_config.in_channels"] = 1, ["vision_config.temporal_patch_size"] = 1, ["vision_config.patch_size"] = 2,
                    ["vision_config.spatial_merge_size"] = 2, ["vision_config.hidden_size"] = 6,
                };
                var specs = new List<(string, int[])> { ("patch_embed.proj.weight", [8, 1, 1, 2, 2]) };
                for (var b = 0; b < 2; b++)
                    specs.AddRange(new (string, int[])[]
                    {
                        ($"blocks.{b}.norm1.weight", [8]), ($"blocks.{b}.norm1.bias", [8]), ($"blocks.{b}.attn.qkv.weight", [24, 8]), ($"blocks.{b}.attn.qkv.bias", [24]),
                        ($"blocks.{b}.attn.proj.weight", [8, 8]), ($"blocks.{b}.attn.proj.bias", [8]), ($"blocks.{b}.norm2.weight", [8]), ($"blocks.{b}.norm2.bias", [8]),
                        ($"blocks.{b}.mlp.fc1.weight", [16, 8]), ($"blocks.{b}.mlp.fc1.bias", [16]), ($"blocks.{b}.mlp.fc2.weight", [8, 16]), ($"blocks.{b}.mlp.fc2.bias", [8]),
                    });
                specs.AddRange(new (string, int[])[] { ("merger.ln_q.weight", [8]), ("merger.ln_q.bias", [8]), ("merger.mlp.0.weight", [32, 32]), ("merger.mlp.0.bias", [32]), ("merger.mlp.2.weight", [6, 32]), ("merger.mlp.2.bias", [6]) });
                var pos = Tensor.FromInt64([0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3], 8, 2);
                return new Case(new VisionTower(), config, Weights(specs.ToArray()),
                    [RandomTensor(8, 4), pos, Tensor.FromInt64([0, 8], 2)], 12,
                    (m, i) => ((VisionTower)m).Forward(i[0], i[1], i[2]), ParamOf,
                    (ctx, w, c, recompute) => { var r = new VisionTower.Runner(ctx, w, c) { Recompute = recompute }; return (i => r.ForwardTrain(i[0], i[1], i[2]), r.Backward); });
            }
        }
        throw new ArgumentException(name);
    }
}
