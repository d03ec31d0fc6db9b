using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Checkpoints;

/// <summary>
/// A save interrupted at each stage: the injected exception stands for a crash there (the save cleans nothing
/// up when an injector is present), so what is left on disk is what a killed process would leave. Every stage
/// boundary is a completed file-system operation, hence these stages cover every state a crash can produce;
/// <see cref="CheckpointKillTests"/> also kills a real process mid-save.
/// </summary>
public class CheckpointFaultTests
{
    private sealed class CrashAt(string stage) : ICheckpointFaultInjector
    {
        public List<string> Seen { get; } = [];

        public void At(string s)
        {
            Seen.Add(s);
            if (s == stage) throw new SimulatedCrash(s);
        }
    }

    private sealed class SimulatedCrash(string stage) : Exception("simulated crash at " + stage);

    public static TheoryData<string> StagesBeforeLatest => new() { "temp-created", "weights-written", "optimizer-written", "files-written", "before-rename", "before-latest" };

    [Theory]
    [MemberData(nameof(StagesBeforeLatest))]
    public void CrashBeforeLatestIsUpdatedLeavesThePreviousCheckpoint(string stage)
    {
        using var dir = new TempDirectory();
        var options = new CheckpointOptions { KeepLast = 1 };
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(100), options);
        byte[] latestBefore = File.ReadAllBytes(dir.File("latest"));

        var crash = new CrashAt(stage);
        Assert.Throws<SimulatedCrash>(() => TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(200), options, crash));
        Assert.Equal(stage, crash.Seen[^1]);

        Assert.Equal(latestBefore, File.ReadAllBytes(dir.File("latest")));
        CheckpointSamples.AssertSame(CheckpointSamples.Content(100), TrainingCheckpoint.LoadLatest(dir.Path));
        if (stage != "before-latest") // up to the rename, the crash leaves its temp folder behind
            Assert.Single(Directory.GetDirectories(dir.Path, ".tmp-checkpoint-200-*"));

        // Resuming works: the next save replaces the leftovers and completes.
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(200), options);
        CheckpointSamples.AssertSame(CheckpointSamples.Content(200), TrainingCheckpoint.LoadLatest(dir.Path));
        Assert.Equal(["checkpoint-200"], Directory.GetDirectories(dir.Path).Select(Path.GetFileName));
        Assert.Equal(["latest"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void CrashBeforePruningLeavesTheNewCheckpointLatestAndTheNextSavePrunes()
    {
        using var dir = new TempDirectory();
        var options = new CheckpointOptions { KeepLast = 1 };
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(100), options);
        Assert.Throws<SimulatedCrash>(() => TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(200), options, new CrashAt("before-prune")));

        CheckpointSamples.AssertSame(CheckpointSamples.Content(200), TrainingCheckpoint.LoadLatest(dir.Path));
        Assert.Equal(2, TrainingCheckpoint.ListCheckpoints(dir.Path).Count);
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(300), options);
        Assert.Equal([(300L, "checkpoint-300")], TrainingCheckpoint.ListCheckpoints(dir.Path));
    }

    [Fact]
    public void CrashDuringTheFirstSaveLeavesNoLatest()
    {
        using var dir = new TempDirectory();
        Assert.Throws<SimulatedCrash>(() => TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(10), new CheckpointOptions(), new CrashAt("before-latest")));
        Assert.Null(TrainingCheckpoint.LoadLatest(dir.Path));
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(10));
        CheckpointSamples.AssertSame(CheckpointSamples.Content(10), TrainingCheckpoint.LoadLatest(dir.Path));
    }

    [Fact]
    public void StagesRunInTheDocumentedOrder()
    {
        using var dir = new TempDirectory();
        var record = new CrashAt("none");
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(1), new CheckpointOptions(), record);
        Assert.Equal(["temp-created", "weights-written", "optimizer-written", "files-written", "before-rename", "before-latest", "before-prune"], record.Seen);
    }

    [Fact]
    public void AnOrdinaryFailureRemovesItsTempFolder()
    {
        using var dir = new TempDirectory();
        TrainingCheckpoint.Save(dir.Path, CheckpointSamples.Content(1));
        // A 300-character file name passes the name check but no Linux/Windows file system accepts it.
        var content = CheckpointSamples.Content(2) with { ExtraFiles = new Dictionary<string, byte[]> { [new string('a', 300)] = [1] } };
        Assert.ThrowsAny<IOException>(() => TrainingCheckpoint.Save(dir.Path, content));
        Assert.Empty(Directory.GetDirectories(dir.Path, ".tmp-*"));
        CheckpointSamples.AssertSame(CheckpointSamples.Content(1), TrainingCheckpoint.LoadLatest(dir.Path));
    }
}

public class DirectorySyncTests
{
    [Fact]
    public void DirectoriesAreFsyncedOnLinux()
    {
        if (!OperatingSystem.IsLinux()) return; // macOS would pass too; Windows has no directory fsync
        using var dir = new TempDirectory();
        Assert.True(DirectorySync.Flush(dir.Path));
        Assert.False(DirectorySync.Flush(dir.File("missing")));
    }
}
