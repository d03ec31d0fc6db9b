using System.Text.Json.Nodes;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime.Checkpoints;
using Xunit;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// <c>train</c> under the failures issue 10 found: resumed runs that outlive their start folder (finding 1), two runs
/// on one --out (5), divergence (6), refused and killed set-ups (7), and the CLI truths of issue 11 (another model on
/// an existing --out, resume announced, nothing to do, step N/M, a warmup as long as the run).
/// </summary>
public sealed class TrainReliabilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-train-rel-").FullName;
    private readonly string _data;

    public TrainReliabilityTests()
    {
        ShapesDataset.Generate(4, 3, Path.Combine(_dir, "data"));
        _data = Path.Combine(_dir, "data", ShapesDataset.JsonlName);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Out(string name = "run") => Path.Combine(_dir, name);

    private InProcessCli.Result Train(string outDir, params string[] more) => InProcessCli.Run(
        ["train", "--config", "shapes", "--data", _data, "--out", outDir, "--batch", "2", .. more.Contains("--warmup") ? more : [.. more, "--warmup", "1"]]);

    private static string? Latest(string outDir) =>
        File.Exists(Path.Combine(outDir, "latest")) ? File.ReadAllText(Path.Combine(outDir, "latest")).Trim() : null;

    [Fact]
    public void AResumedRunSavesPastTheCheckpointItStartedFrom()
    {
        var outDir = Out();
        var first = Train(outDir, "--steps", "4", "--save-every", "1");
        Assert.True(first.ExitCode == 0, first.ToString());
        // Main stopped at step 7: the third save read config.json from checkpoint-4, pruned two saves before.
        var second = Train(outDir, "--steps", "9", "--save-every", "1");
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("resuming from step 4", second.Stdout);
        Assert.Contains("step 9/9", second.Stdout);
        Assert.Equal("checkpoint-9", Latest(outDir));
        foreach (var file in new[] { "config.json", "tokenizer.json", "preprocessor_config.json" })
            Assert.True(File.Exists(Path.Combine(outDir, "checkpoint-9", file)), file);
    }

    [Fact]
    public void ASecondRunOnTheSameOutIsRefusedNamingTheHolder()
    {
        var outDir = Out();
        Directory.CreateDirectory(outDir);
        using (OutputLock.Acquire(outDir))
        {
            var r = Train(outDir, "--steps", "1");
            Assert.Equal(2, r.ExitCode);
            Assert.Single(r.ErrorLines);
            Assert.Contains($"another training run is using this folder (pid {Environment.ProcessId}", r.Stderr);
            Assert.False(Directory.Exists(Path.Combine(outDir, "init")));
        }
        // The lock dies with its holder: the next run takes it.
        Assert.Equal(0, Train(outDir, "--steps", "1").ExitCode);
    }

    [Fact]
    public void DivergenceStopsWithAnErrorAndKeepsTheLastFiniteCheckpoint()
    {
        var outDir = Out();
        Assert.Equal(0, Train(outDir, "--steps", "2", "--save-every", "1").ExitCode);
        var r = Train(outDir, "--steps", "4", "--save-every", "1", "--lr", "1e30");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("training diverged at step", r.Stderr);
        var latest = Latest(outDir)!;
        Assert.Contains($"the last good checkpoint is {latest}", r.Stderr);
        Assert.NotEqual("checkpoint-4", latest);
        // Whatever was saved is finite, and the run's last finite checkpoints were not pruned for a diverged one.
        using (var weights = Qwen2VL.Runtime.SafetensorsFile.Open(Path.Combine(outDir, latest, "model.safetensors")))
            foreach (var name in weights.Tensors.Keys)
                Assert.All(weights.ReadFloat32(name), x => Assert.True(float.IsFinite(x), name));
        Assert.True(Directory.Exists(Path.Combine(outDir, "checkpoint-2")) || latest == "checkpoint-3");
    }

    [Fact]
    public void ACorruptAdamStepIsRefused()
    {
        var outDir = Out();
        Assert.Equal(0, Train(outDir, "--steps", "1").ExitCode);
        var state = Path.Combine(outDir, "checkpoint-1", "trainer_state.json");
        var json = JsonNode.Parse(File.ReadAllText(state))!;
        json["learning_rate_schedule"]!["adam_step"] = "NaN";
        File.WriteAllText(state, json.ToJsonString());
        var r = Train(outDir, "--steps", "2");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("adam_step NaN does not match global_step 1", r.Stderr);
        Assert.Equal("checkpoint-1", Latest(outDir));
    }

    [Fact]
    public void ARefusedRunLeavesNothingBehind()
    {
        // --data naming an image that does not exist: found only when the trainer encodes the samples.
        var bad = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllText(bad, File.ReadAllText(_data).Replace("images/000001.png", "images/missing.png"));
        var outDir = Out();
        var r = InProcessCli.Run("train", "--config", "shapes", "--data", bad, "--out", outDir, "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.False(Directory.Exists(outDir), "a refused run must not leave --out behind");

        // Broken JSONL: refused before anything is written; an existing --out keeps exactly what it had.
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "notes.txt"), "mine");
        File.WriteAllText(bad, "{\"messages\": [");
        r = InProcessCli.Run("train", "--config", "shapes", "--data", bad, "--out", outDir, "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal(["notes.txt"], Directory.EnumerateFileSystemEntries(outDir).Select(p => Path.GetFileName(p)!).ToArray());
    }

    [Fact]
    public void ASetUpKilledHalfWayCanBeResumed()
    {
        // What a kill -9 during `train --config` set-up leaves: a temp init folder, or (on main) an init without weights.
        var outDir = Out();
        Directory.CreateDirectory(Path.Combine(outDir, ".tmp-init-deadbeef"));
        Directory.CreateDirectory(Path.Combine(outDir, "init"));
        File.WriteAllText(Path.Combine(outDir, "init", "config.json"), "{}");
        var r = Train(outDir, "--steps", "1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(Directory.Exists(Path.Combine(outDir, ".tmp-init-deadbeef")));
        Assert.True(File.Exists(Path.Combine(outDir, "init", "model.safetensors")));
    }

    [Fact]
    public void AnotherModelOnAnExistingOutIsRefusedAndFinishedRunsSaySo()
    {
        var outDir = Out();
        var first = Train(outDir, "--steps", "2", "--warmup", "5");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("warning: --warmup 5 is not below the run's 2 steps", first.Stderr);

        var other = InProcessCli.Run("train", "--config", "tiny", "--data", _data, "--out", outDir, "--steps", "3");
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("holds a run started with --config shapes, not --config tiny", other.Stderr);

        var again = Train(outDir, "--steps", "2");
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("nothing to do", again.Stdout);
        Assert.Contains("already at step 2", again.Stdout);
    }
}
