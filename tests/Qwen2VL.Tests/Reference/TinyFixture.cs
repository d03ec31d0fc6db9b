using System.Collections.Concurrent;
using Qwen2VL.Dsl;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Tests.Reference;

/// <summary>One golden case of tests/fixtures/qwen2vl-tiny: its inputs and the transformers outputs.</summary>
public sealed class FixtureCase
{
    public FixtureCase(string dir)
    {
        Name = Path.GetFileName(dir);
        using var inputs = SafetensorsFile.Open(Path.Combine(dir, "inputs.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        var idsInfo = inputs.Info("input_ids");
        Batch = (int)idsInfo.Shape[0];
        Seq = (int)idsInfo.Shape[1];
        InputIds = inputs.ReadInt64("input_ids");
        AttentionMask = inputs.ReadInt64("attention_mask");
        Labels = inputs.ReadInt64("labels");
        Images = ReadVision(inputs, "pixel_values", "image_grid_thw");
        Videos = ReadVision(inputs, "pixel_values_videos", "video_grid_thw");
        foreach (var (name, info) in expected.Tensors)
        {
            if (name.StartsWith("grad.", StringComparison.Ordinal)) continue;
            var shape = info.Shape.Select(d => (int)d).ToArray();
            Expected[name] = info.DType == SafetensorsDType.I64
                ? Tensor.FromInt64(expected.ReadInt64(name), shape)
                : new Tensor(shape, Array.ConvertAll(expected.ReadFloat32(name), v => (double)v));
        }
    }

    public string Name { get; }
    public int Batch { get; }
    public int Seq { get; }
    public long[] InputIds { get; }
    public long[] AttentionMask { get; }
    public long[] Labels { get; }
    public VisionInput? Images { get; }
    public VisionInput? Videos { get; }
    public Dictionary<string, Tensor> Expected { get; } = new();

    private static VisionInput? ReadVision(SafetensorsFile f, string pixels, string grids)
    {
        if (!f.Tensors.ContainsKey(pixels)) return null;
        var shape = f.Info(pixels).Shape.Select(d => (int)d).ToArray();
        var px = new Tensor(shape, Array.ConvertAll(f.ReadFloat32(pixels), v => (double)v));
        return new VisionInput(px, GridThw.FromRows(f.ReadInt64(grids)));
    }
}

/// <summary>Loads the tiny model once and caches each case's reference forward pass and generation.</summary>
public sealed class TinyFixture
{
    public const string Dir = "fixtures/qwen2vl-tiny";
    public static readonly string[] CaseNames = ["a_image_text", "b_batch2_two_images_leftpad", "c_video_text", "d_text_only"];

    private readonly ConcurrentDictionary<string, Lazy<FixtureCase>> _cases = new();
    private readonly ConcurrentDictionary<string, Lazy<ReferenceOutput>> _outputs = new();
    private readonly ConcurrentDictionary<string, Lazy<GenerationResult>> _generations = new();
    private readonly Lazy<ReferenceModel> _model = new(() => ReferenceModel.Load(Path.Combine(AppContext.BaseDirectory, Dir)));

    public ReferenceModel Model => _model.Value;

    public FixtureCase Case(string name) =>
        _cases.GetOrAdd(name, n => new(() => new FixtureCase(Path.Combine(AppContext.BaseDirectory, Dir, "cases", n)))).Value;

    public ReferenceOutput Output(string name) => _outputs.GetOrAdd(name, n => new(() =>
    {
        var c = Case(n);
        return Model.Forward(c.InputIds, c.AttentionMask, c.Batch, c.Seq, c.Images, c.Videos, c.Labels);
    })).Value;

    public GenerationResult Generation(string name) => _generations.GetOrAdd(name, n => new(() =>
    {
        var c = Case(n);
        return Model.Generate(c.InputIds, c.AttentionMask, c.Batch, c.Seq, 8, c.Images, c.Videos, eosTokenId: 504, padTokenId: 505);
    })).Value;
}
