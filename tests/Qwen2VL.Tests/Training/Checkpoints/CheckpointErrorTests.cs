using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Checkpoints;

/// <summary>A missing or corrupt piece is one line naming the file; bad content is refused before anything is written.</summary>
public class CheckpointErrorTests
{
    private static ModelException LoadFails(string dir)
    {
        var error = Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.LoadLatest(dir));
        Assert.DoesNotContain('\n', error.Message);
        return error;
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("config.json")]
    [InlineData("trainer_state.json")]
    public void MissingFileIsNamed(string file)
    {
        using var dir = new TempDirectory();
        string saved = TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(5));
        File.Delete(Path.Combine(saved, file));
        Assert.Contains($"checkpoint-5/{file}: file not found", LoadFails(dir.Path).Message);
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("optimizer.safetensors")]
    public void TruncatedSafetensorsIsNamed(string file)
    {
        using var dir = new TempDirectory();
        string saved = TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(5));
        string path = Path.Combine(saved, file);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 9)]);
        Assert.Contains(file, LoadFails(dir.Path).Message);
    }

    [Fact]
    public void CorruptTrainerStateIsNamed()
    {
        using var dir = new TempDirectory();
        string saved = TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(5));
        File.WriteAllText(Path.Combine(saved, "trainer_state.json"), "{\"format_version\": 1, \"global_step\": ");
        Assert.StartsWith("checkpoint-5/trainer_state.json: ", LoadFails(dir.Path).Message);

        File.WriteAllText(Path.Combine(saved, "trainer_state.json"), "{\"format_version\": 1}");
        Assert.Equal("checkpoint-5/trainer_state.json: missing key 'data_position'", LoadFails(dir.Path).Message);
    }

    [Fact]
    public void LatestNamingAMissingOrBogusFolderIsNamed()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("latest"), "checkpoint-9\n");
        Assert.Contains("latest: names checkpoint-9, which does not exist", LoadFails(dir.Path).Message);
        File.WriteAllText(dir.File("latest"), "../../etc\n");
        Assert.Contains("expected a folder name like checkpoint-100", LoadFails(dir.Path).Message);
    }

    [Fact]
    public void BadContentIsRefusedBeforeWriting()
    {
        using var dir = new TempDirectory();
        CheckpointContent good = CheckpointSamples.Content(5);
        var badShape = good with { Weights = [("w", new float[5], [2, 3])] };
        Assert.Contains("weight 'w' has 5 values, shape [2, 3] needs 6",
            Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.Save(dir.Path, badShape)).Message);
        Assert.Contains("config.json text is not valid JSON",
            Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.Save(dir.Path, good with { ConfigJson = "{\"a\": " })).Message);
        var badName = good with { ExtraFiles = new Dictionary<string, byte[]> { ["../x.json"] = [1] } };
        Assert.Contains("must be a plain file name", Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.Save(dir.Path, badName)).Message);
        var clash = good with { ExtraFiles = new Dictionary<string, byte[]> { ["config.json"] = [1] } };
        Assert.Contains("would replace", Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.Save(dir.Path, clash)).Message);
        var badLayout = good with { Optimizer = good.Optimizer! with { Layout = [new OptimizerSlot("x", 130, [8])] } };
        Assert.Contains("slot 'x'", Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.Save(dir.Path, badLayout)).Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void OverwritingTheLatestCheckpointIsRefused()
    {
        using var dir = new TempDirectory();
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(5));
        var error = Assert.ThrowsAny<ModelException>(() => TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(5)));
        Assert.Contains("already exists and is the latest", error.Message);
        CheckpointSamples.AssertSame(CheckpointSamples.Content(5), TrainingCheckpoint.LoadLatest(dir.Path));
    }
}
