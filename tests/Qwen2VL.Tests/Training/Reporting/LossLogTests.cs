using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Reporting;

public class LossLogTests
{
    private static LossLogRow Row(long step) => new(step, (int)(step / 4), 2.0 / (step + 1) + 0.1, 1e-4 * step, 1234.56 + step, step % 2 == 0 ? 0.5 * step : null);

    [Fact]
    public void RowsAreWrittenAsCsvAndReadBackExactly()
    {
        using var dir = new TempDirectory();
        string path = dir.File("loss.csv");
        using (LossLog log = LossLog.Create(path))
        {
            for (long s = 1; s <= 3; s++) log.Append(Row(s));
            // Flushed per step: readable while the log is still open.
            Assert.Equal(4, File.ReadAllLines(path).Length);
        }
        string[] lines = File.ReadAllLines(path);
        Assert.Equal("step,epoch,loss,learning_rate,tokens_per_second,grad_norm", lines[0]);
        Assert.Equal("1,0,1.1,0.0001,1235.6,", lines[1]);
        Assert.Equal("2,0,0.7666666666666666,0.0002,1236.6,1", lines[2]);
        var rows = LossLog.Read(path);
        Assert.Equal([Row(1).Loss, Row(2).Loss, Row(3).Loss], rows.Select(r => r.Loss));
        Assert.Equal([null, 1.0, null], rows.Select(r => r.GradNorm));
        Assert.Equal(1235.6, rows[0].TokensPerSecond);
    }

    [Fact]
    public void ResumeDropsRowsAfterTheResumedStepAndATornLastLine()
    {
        using var dir = new TempDirectory();
        string path = dir.File("loss.csv");
        using (LossLog log = LossLog.Create(path))
            for (long s = 1; s <= 7; s++) log.Append(Row(s));
        File.AppendAllText(path, "8,2,0.12"); // the killed run was mid-row

        using (LossLog log = LossLog.Resume(path, resumedStep: 5))
        {
            Assert.Equal([1L, 2, 3, 4, 5], LossLog.Read(path).Select(r => r.Step));
            log.Append(Row(6));
        }
        Assert.Equal([1L, 2, 3, 4, 5, 6], LossLog.Read(path).Select(r => r.Step));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void ResumeWithoutALogStartsOne()
    {
        using var dir = new TempDirectory();
        string path = dir.File("sub/loss.csv");
        using (LossLog log = LossLog.Resume(path, 10)) log.Append(Row(11));
        Assert.Equal([11L], LossLog.Read(path).Select(r => r.Step));
    }

    [Fact]
    public void MalformedLogIsOneLineNamingFileAndLine()
    {
        using var dir = new TempDirectory();
        string path = dir.File("loss.csv");
        File.WriteAllText(path, LossLog.Header + "\n1,0,0.5,0.1,10,\n2,zero,0.5,0.1,10,\n");
        var error = Assert.ThrowsAny<ModelException>(() => LossLog.Resume(path, 5));
        Assert.Equal("loss.csv: line 3 is not a loss log row: '2,zero,0.5,0.1,10,'", error.Message);
        File.WriteAllText(path, "a,b\n");
        Assert.StartsWith("loss.csv: line 1 is not the loss log header", Assert.ThrowsAny<ModelException>(() => LossLog.Read(path)).Message);
    }
}
