using System.Text.Json.Nodes;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// A fine-tune of a checkpoint in the released layout (bf16, two shards, the new tensor names, generation_config and
/// chat_template beside it) is saved back in that layout with every companion file, and resuming from such a
/// checkpoint continues bit-identically (the f32 masters ride in the optimizer file).
/// </summary>
public sealed class CheckpointLayoutTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-layout-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string NewName(string n) =>
        n.StartsWith("visual.", StringComparison.Ordinal) ? "model." + n
        : n.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + n["model.".Length..]
        : n;

    /// <summary>The embedded shapes model rewritten as Hugging Face now publishes Qwen2-VL.</summary>
    private string ReleasedLayout()
    {
        var source = Path.Combine(AppContext.BaseDirectory, "shapes-model");
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "released")).FullName;
        foreach (var file in new[] { "config.json", "tokenizer.json", "preprocessor_config.json" })
            File.Copy(Path.Combine(source, file), Path.Combine(dir, file));
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), "{\"do_sample\": false, \"eos_token_id\": 372, \"repetition_penalty\": 1.05}\n");
        File.WriteAllText(Path.Combine(dir, "chat_template.json"), "{\"chat_template\": \"{% for message in messages %}{{ message.content }}{% endfor %}\"}\n");
        using var weights = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var names = weights.Tensors.Keys.Order(StringComparer.Ordinal).ToArray();
        var index = new JsonObject();
        for (int shard = 0; shard < 2; shard++)
        {
            string file = $"model-0000{shard + 1}-of-00002.safetensors";
            var part = names.Where((_, i) => i % 2 == shard).ToArray();
            SafetensorsWriter.Write(Path.Combine(dir, file), part.Select(n =>
                SafetensorsEntry.BF16(NewName(n), weights.ReadFloat32(n), weights.Info(n).Shape)).ToList());
            foreach (var n in part) index[NewName(n)] = file;
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), new JsonObject { ["weight_map"] = index }.ToJsonString());
        return dir;
    }

    [Fact]
    public void AFineTuneIsSavedInTheLayoutItCameInAndResumesExactly()
    {
        var model = ReleasedLayout();
        ShapesDataset.Generate(4, 9, Path.Combine(_dir, "data"));
        var data = Path.Combine(_dir, "data", ShapesDataset.JsonlName);
        string[] Train(string outDir, int steps) =>
            ["train", "--model", model, "--data", data, "--out", outDir, "--steps", steps.ToString(), "--batch", "2", "--warmup", "1", "--save-every", "1"];

        var straight = Path.Combine(_dir, "straight");
        var r = InProcessCli.Run(Train(straight, 3));
        Assert.True(r.ExitCode == 0, r.ToString());
        var saved = Path.Combine(straight, "checkpoint-3");
        foreach (var file in new[] { "config.json", "tokenizer.json", "preprocessor_config.json", "generation_config.json", "chat_template.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(model, file)), File.ReadAllBytes(Path.Combine(saved, file)));
        Assert.True(File.Exists(Path.Combine(saved, "model.safetensors.index.json")));
        Assert.False(File.Exists(Path.Combine(saved, "model.safetensors")));
        using (var store = WeightStore.OpenDirectory(saved))
        {
            var expected = WeightStore.OpenDirectory(model);
            Assert.Equal(expected.Names.Order(StringComparer.Ordinal), store.Names.Order(StringComparer.Ordinal));
            Assert.All(store.Names, n => Assert.Equal(SafetensorsDType.BF16, store.Info(n).DType));
            expected.Dispose();
        }
        Assert.Equal(2, Directory.EnumerateFiles(saved, "model-*-of-00002.safetensors").Count());

        // Stopped at step 2 and resumed to 3: the same bytes as the straight run (bf16 weights, f32 masters kept aside).
        var resumed = Path.Combine(_dir, "resumed");
        Assert.Equal(0, InProcessCli.Run(Train(resumed, 2)).ExitCode);
        r = InProcessCli.Run(Train(resumed, 3));
        Assert.True(r.ExitCode == 0, r.ToString());
        foreach (var file in Directory.EnumerateFiles(saved).Select(Path.GetFileName))
            Assert.True(File.ReadAllBytes(Path.Combine(saved, file!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(resumed, "checkpoint-3", file!))), file);
    }
}
