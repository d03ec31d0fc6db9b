using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Model.Training.Synthetic;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary><c>train</c> as a process: from scratch on a few shapes questions, packed, by epochs.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-train-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void PackedEpochRunShowsItsTotalAndWritesTheLogAndCurve()
    {
        ShapesDataset.Generate(12, 4, Path.Combine(_dir, "data"));
        var outDir = Path.Combine(_dir, "run");
        var r = CliRunner.Run("train", "--config", "shapes", "--data", Path.Combine(_dir, "data", ShapesDataset.JsonlName), "--out", outDir,
            "--epochs", "1", "--batch", "4", "--pack", "--max-length", "256", "--warmup", "1");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("step 3/3 | loss", r.Stdout); // 12 samples / 4: the total is known in --epochs mode
        Assert.Equal(3, LossLog.Read(Path.Combine(outDir, "loss.csv")).Count);
        Assert.True(File.Exists(Path.Combine(outDir, "loss.png")));
    }

    [Fact]
    public void APackedRowTooShortForASampleIsAOneLineError()
    {
        ShapesDataset.Generate(4, 4, Path.Combine(_dir, "data"));
        var r = CliRunner.Run("train", "--config", "shapes", "--data", Path.Combine(_dir, "data", ShapesDataset.JsonlName),
            "--out", Path.Combine(_dir, "run"), "--steps", "1", "--batch", "2", "--pack", "--max-length", "8");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("do not fit the packing budget of 8", r.Stderr);
    }
}
