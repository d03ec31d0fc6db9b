using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Checkpoints;

public class CheckpointRoundTripTests
{
    [Fact]
    public void F32CheckpointRoundTripsBitExactly()
    {
        using var dir = new TempDirectory();
        CheckpointContent content = CheckpointSamples.Content(step: 30);
        string saved = TrainingCheckpoint.Save(dir.Path, content);

        Assert.Equal(dir.File("checkpoint-30"), saved);
        Assert.Equal("checkpoint-30\n", File.ReadAllText(dir.File("latest")));
        Assert.Equal(saved, TrainingCheckpoint.LatestPath(dir.Path));
        CheckpointSamples.AssertSame(content, TrainingCheckpoint.LoadLatest(dir.Path));
        Assert.Equal(File.ReadAllBytes(Path.Combine(saved, "tokenizer.json")), content.ExtraFiles["tokenizer.json"]);
    }

    [Fact]
    public void NonFiniteLossesAndScheduleValuesSurvive()
    {
        using var dir = new TempDirectory();
        CheckpointContent content = CheckpointSamples.Content(step: 3) with { Optimizer = null };
        content = content with
        {
            Trainer = content.Trainer with
            {
                LossHistory = [(1, double.NaN), (2, double.PositiveInfinity), (3, 0.1 + 0.2)],
                LearningRateSchedule = new Dictionary<string, double> { ["current_lr"] = double.NegativeInfinity },
            },
        };
        TrainingCheckpoint.Save(dir.Path, content);
        CheckpointContent? loaded = TrainingCheckpoint.LoadLatest(dir.Path);
        CheckpointSamples.AssertSame(content, loaded);
        Assert.False(File.Exists(Path.Combine(dir.Path, "checkpoint-3", "optimizer.safetensors")));
    }

    [Fact]
    public void Bf16WeightsAreRoundedToNearestEvenAndEverythingElseIsExact()
    {
        using var dir = new TempDirectory();
        CheckpointContent content = CheckpointSamples.Content(step: 7);
        string saved = TrainingCheckpoint.Save(dir.Path, content, new CheckpointOptions { WeightsDType = CheckpointDType.BF16 });

        // Expected bf16 values computed here independently: keep the top 16 bits after round-half-to-even.
        static float Bf16(float x)
        {
            uint u = BitConverter.SingleToUInt32Bits(x);
            uint lower = u & 0xFFFF, upper = u & 0xFFFF0000;
            if (lower > 0x8000 || (lower == 0x8000 && (upper & 0x10000) != 0)) upper += 0x10000;
            return BitConverter.UInt32BitsToSingle(upper);
        }
        var expected = content with { Weights = content.Weights.Select(w => (w.Name, w.Data.Select(Bf16).ToArray(), w.Shape)).ToList() };
        CheckpointContent? loaded = TrainingCheckpoint.Load(saved);
        CheckpointSamples.AssertSame(expected, loaded);
        Assert.Contains(content.Weights[0].Data.Zip(loaded.Weights[0].Data), p => p.First != p.Second); // really rounded

        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(saved, "model.safetensors"));
        Assert.All(file.Tensors.Values, t => Assert.Equal(SafetensorsDType.BF16, t.DType));
        using SafetensorsFile optimizer = SafetensorsFile.Open(Path.Combine(saved, "optimizer.safetensors"));
        Assert.All(optimizer.Tensors.Values, t => Assert.Equal(SafetensorsDType.F32, t.DType));
    }

    [Fact]
    public void WeightsFileHasHuggingFaceNamesShapesAndPtFormat()
    {
        using var dir = new TempDirectory();
        string saved = TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(step: 1));

        using SafetensorsFile file = SafetensorsFile.Open(Path.Combine(saved, "model.safetensors"));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(
            ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.bias", "visual.patch_embed.proj.weight"],
            file.Tensors.Keys.Order());
        Assert.Equal([16L, 8L], file.Tensors["model.embed_tokens.weight"].Shape);
        Assert.Equal([8L, 3L, 2L, 2L, 2L], file.Tensors["visual.patch_embed.proj.weight"].Shape);
        Assert.Equal(SafetensorsDType.F32, file.Tensors["model.layers.0.self_attn.q_proj.bias"].DType);
        Assert.Equal(CheckpointSamples.Config, File.ReadAllText(Path.Combine(saved, "config.json")));
    }

    [Fact]
    public void LossHistoryIsTrimmedToTheConfiguredLength()
    {
        using var dir = new TempDirectory();
        CheckpointContent content = CheckpointSamples.Content(step: 50);
        TrainingCheckpoint.Save(dir.Path, content, new CheckpointOptions { LossHistoryLength = 2 });
        Assert.Equal(content.Trainer.LossHistory.TakeLast(2), TrainingCheckpoint.LoadLatest(dir.Path)!.Trainer.LossHistory);
    }

    [Fact]
    public void EmptyDirectoryHasNoLatest()
    {
        using var dir = new TempDirectory();
        Assert.Null(TrainingCheckpoint.LoadLatest(dir.Path));
        Assert.Null(TrainingCheckpoint.LoadLatest(dir.File("never-created")));
    }

    [Fact]
    public void KeepLastPrunesOlderCheckpointsAndKeepsTheNewest()
    {
        using var dir = new TempDirectory();
        foreach (long step in new long[] { 10, 20, 30, 40 })
            TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(step), new CheckpointOptions { KeepLast = 2 });

        Assert.Equal([(30L, "checkpoint-30"), (40L, "checkpoint-40")], TrainingCheckpoint.ListCheckpoints(dir.Path));
        Assert.Equal(["checkpoint-30", "checkpoint-40"], Directory.GetDirectories(dir.Path).Select(Path.GetFileName).Order());
        CheckpointSamples.AssertSame(CheckpointSamples.Content(40), TrainingCheckpoint.LoadLatest(dir.Path));
    }

    [Fact]
    public void KeepingAllIsTheDefault()
    {
        using var dir = new TempDirectory();
        foreach (long step in new long[] { 1, 2, 3 }) TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(step));
        Assert.Equal(3, TrainingCheckpoint.ListCheckpoints(dir.Path).Count);
    }
}
