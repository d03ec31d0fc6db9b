using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Checkpoints;

/// <summary>
/// A checkpoint of the tiny fixture model (whose model.safetensors Hugging Face's save path wrote) has the same
/// tensors, shapes, dtype and bytes as the original and opens as a model folder for this project's loader.
/// </summary>
public class HuggingFaceLayoutTests
{
    private static string Fixture(string file) => Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", file);

    [Fact]
    public void FixtureWeightsSavedAsACheckpointMatchTheOriginalFile()
    {
        using var dir = new TempDirectory();
        using SafetensorsFile original = SafetensorsFile.Open(Fixture("model.safetensors"));
        var weights = original.Tensors.Values.OrderBy(t => t.Offset)
            .Select(t => (t.Name, original.ReadFloat32(t.Name), t.Shape.Select(d => (int)d).ToArray())).ToList();
        var content = new CheckpointContent(weights, File.ReadAllText(Fixture("config.json")), null,
            new TrainerState { Step = 0, Epoch = 0, DataPosition = default, RngState = [] })
        {
            ExtraFiles = new Dictionary<string, byte[]> { ["preprocessor_config.json"] = File.ReadAllBytes(Fixture("preprocessor_config.json")) },
        };
        // The fixture is bfloat16: widened to float32 and saved as BF16 again, every value must come back unchanged.
        Assert.All(original.Tensors.Values, t => Assert.Equal(SafetensorsDType.BF16, t.DType));
        string saved = TrainingCheckpoint.Save(dir.Path, content, new CheckpointOptions { WeightsDType = CheckpointDType.BF16 });

        using SafetensorsFile copy = SafetensorsFile.Open(Path.Combine(saved, "model.safetensors"));
        Assert.Equal("pt", copy.Metadata["format"]);
        Assert.Equal(original.Tensors.Keys.Order(), copy.Tensors.Keys.Order());
        foreach (TensorInfo info in original.Tensors.Values)
        {
            Assert.Equal(info.DType, copy.Tensors[info.Name].DType);
            Assert.Equal(info.Shape, copy.Tensors[info.Name].Shape);
            Assert.True(original.GetBytes(info.Name).SequenceEqual(copy.GetBytes(info.Name)), $"{info.Name}: bytes differ");
        }
        Assert.Equal(File.ReadAllBytes(Fixture("config.json")), File.ReadAllBytes(Path.Combine(saved, "config.json")));
        Assert.Equal(File.ReadAllBytes(Fixture("preprocessor_config.json")), File.ReadAllBytes(Path.Combine(saved, "preprocessor_config.json")));

        using WeightStore store = WeightStore.OpenDirectory(saved);
        Assert.Equal(original.Tensors.Count, store.Names.Count());
        Assert.Equal(original.ReadFloat32(weights[0].Name), store.ReadFloat32(weights[0].Name));
    }
}
