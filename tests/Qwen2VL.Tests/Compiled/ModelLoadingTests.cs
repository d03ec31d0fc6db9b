using System.Text.Json.Nodes;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Compiled;

/// <summary>
/// Model directories in the other layouts of spec §0.2 / §2.3: a nested text_config with v5's rope_parameters and
/// the checkpoint spellings of the vision keys, new-style tensor names split over two shards, and a tied head.
/// </summary>
public sealed class ModelLoadingTests
{
    private static readonly string[] TextKeys =
        ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
         "rms_norm_eps", "rope_theta", "vocab_size", "tie_word_embeddings"];

    [Fact]
    public void NestedConfigAndShardedNewNamesGiveTheSameLogits()
    {
        using var dir = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(FixturePaths.Config))!.AsObject();
        var text = new JsonObject();
        foreach (var key in TextKeys)
        {
            text[key] = config[key]!.DeepClone();
            config.Remove(key);
        }
        text["rope_parameters"] = config["rope_scaling"]!.DeepClone();
        config.Remove("rope_scaling");
        config["text_config"] = text;
        var vision = config["vision_config"]!.AsObject();
        vision.Remove("in_channels");
        vision.Remove("patch_size");
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());

        using (var source = SafetensorsFile.Open(FixturePaths.Model))
        {
            static string NewName(string n) =>
                n.StartsWith("visual.", StringComparison.Ordinal) ? "model." + n
                : n.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + n["model.".Length..]
                : n;
            var names = source.Tensors.Keys.Order(StringComparer.Ordinal).ToArray();
            var index = new JsonObject();
            for (int shard = 0; shard < 2; shard++)
            {
                string file = $"model-0000{shard + 1}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == shard).ToArray();
                SafetensorsWriter.Write(dir.File(file), part.Select(n =>
                    SafetensorsEntry.F32(NewName(n), source.ReadFloat32(n), source.Info(n).Shape)).ToList());
                foreach (var n in part) index[NewName(n)] = file;
            }
            File.WriteAllText(dir.File("model.safetensors.index.json"), new JsonObject { ["weight_map"] = index }.ToJsonString());
        }

        using var golden = new GoldenCase("a_image_text");
        using var flat = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
        using var nested = Qwen2VLModel.Load(dir.Path, DeviceKind.Cpu);
        Assert.False(nested.TiedHead);
        var want = flat.Forward(golden.Inputs);
        var got = nested.Forward(golden.Inputs);
        Assert.Equal(want.PositionIds, got.PositionIds);
        Assert.Equal(want.ImageEmbeds, got.ImageEmbeds);
        Assert.Equal(want.Logits, got.Logits);
    }

    [Theory]
    [InlineData(true, true)]     // tie_word_embeddings: the stored lm_head.weight is ignored
    [InlineData(false, false)]   // no lm_head.weight stored: the embedding table stands in
    public void TiedHeadProjectsWithTheEmbeddingTable(bool tie, bool keepLmHead)
    {
        using var dir = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(FixturePaths.Config))!.AsObject();
        config["tie_word_embeddings"] = tie;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        float[] table;
        using (var source = SafetensorsFile.Open(FixturePaths.Model))
        {
            table = source.ReadFloat32("model.embed_tokens.weight");
            SafetensorsWriter.Write(dir.File("model.safetensors"), source.Tensors.Keys
                .Where(n => keepLmHead || n != "lm_head.weight")
                .Select(n => SafetensorsEntry.F32(n, source.ReadFloat32(n), source.Info(n).Shape)).ToList());
        }

        using var golden = new GoldenCase("d_text_only");
        using var model = Qwen2VLModel.Load(dir.Path, DeviceKind.Cpu);
        Assert.True(model.TiedHead);
        var output = model.Forward(golden.Inputs);
        var normed = output.HiddenStates[^1];
        int h = model.Hidden, v = model.Vocab;
        for (int t = 0; t < output.Batch * output.Seq; t++)
            for (int j = 0; j < v; j++)
            {
                double dot = 0;
                for (int i = 0; i < h; i++) dot += (double)normed[t * h + i] * table[j * h + i];
                Assert.True(Math.Abs(dot - output.Logits[t * v + j]) <= 1e-4, $"logit [{t}, {j}]: {output.Logits[t * v + j]} vs {dot}");
            }
    }

    [Theory]
    [InlineData("rms_norm_eps", -1e-5)]
    [InlineData("rope_theta", 0.0)]
    public void ANonPositiveFloatConstIsRejectedByName(string key, double value)
    {
        using var dir = new TempDirectory();
        var config = JsonNode.Parse(File.ReadAllText(FixturePaths.Config))!.AsObject();
        config[key] = value;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        File.Copy(FixturePaths.Model, dir.File("model.safetensors"));
        Assert.Contains(key, Assert.Throws<ConfigException>(() => Qwen2VLModel.Load(dir.Path, DeviceKind.Cpu)).Message);
    }
}
