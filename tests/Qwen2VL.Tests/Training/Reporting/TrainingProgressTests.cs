using Qwen2VL.Model.Training.Reporting;
using Spectre.Console;
using Xunit;

namespace Qwen2VL.Tests.Training.Reporting;

public class TrainingProgressTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualTime : TimeProvider
    {
        public long Ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Ticks;
        public void Advance(double seconds) => Ticks += (long)(seconds * TimeSpan.TicksPerSecond);
    }

    [Fact]
    public void PlainFallbackPrintsEveryNStepsAndTheLast()
    {
        var time = new ManualTime();
        var output = new StringWriter();
        var progress = new TrainingProgress(startStep: 0, totalSteps: 25, output, plainEvery: 10, time);
        for (int step = 1; step <= 25; step++)
        {
            time.Advance(0.5);                       // 0.5 s per step, 1000 tokens per step
            progress.Report(step, 3.0 - step * 0.1, 1000);
        }
        Assert.Equal(
        [
            "step 10/25 | loss 2.0000 | 2000 tok/s | ETA 0:00:07",
            "step 20/25 | loss 1.0000 | 2000 tok/s | ETA 0:00:02",
            "step 25/25 | loss 0.5000 | 2000 tok/s | ETA 0:00:00",
        ], output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
    }

    [Fact]
    public void ResumedRunCountsOnlyItsOwnStepsForTheEstimate()
    {
        var time = new ManualTime();
        var progress = new TrainingProgress(startStep: 100, totalSteps: 200, plain: null, time: time);
        Assert.Null(progress.Eta);
        Assert.Equal("loss NaN | 0 tok/s | ETA ?", progress.StatusLine());
        time.Advance(4);
        progress.Report(102, 1.5, 300); // 2 steps in 4 s, 98 left
        Assert.Equal(TimeSpan.FromSeconds(196), progress.Eta);
        Assert.Equal(75, progress.TokensPerSecond);
        Assert.Equal("0:03:16", TrainingProgress.FormatEta(progress.Eta));
        Assert.Equal("26:00:01", TrainingProgress.FormatEta(TimeSpan.FromHours(26) + TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void RunUsesPlainLinesOnANonInteractiveConsole()
    {
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Interactive = InteractionSupport.No, Ansi = AnsiSupport.No,
        });
        var time = new ManualTime();
        TrainingProgress.Run(0, 4, p =>
        {
            for (int s = 1; s <= 4; s++) { time.Advance(1); p.Report(s, 1.0 / s, 10); }
        }, console, plainEvery: 2, time);
        Assert.Equal(["step 2/4 | loss 0.5000 | 10 tok/s | ETA 0:00:02", "step 4/4 | loss 0.2500 | 10 tok/s | ETA 0:00:00"],
            output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
    }

    [Fact]
    public void RunDrawsABarWithLossOnAnInteractiveConsole()
    {
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Interactive = InteractionSupport.Yes, Ansi = AnsiSupport.Yes,
        });
        var time = new ManualTime();
        TrainingProgress.Run(0, 4, p =>
        {
            for (int s = 1; s <= 4; s++) { time.Advance(1); p.Report(s, 1.0 / s, 10); }
        }, console, time: time);
        string text = output.ToString();
        Assert.Contains("loss 0.2500 | 10 tok/s | ETA 0:00:00", text);
        Assert.Contains("100%", text);
        Assert.Contains("step 4/4 | loss", text); // issue 11: the bar shows step N/M, as the plain lines do
    }

    [Fact]
    public void BeginSetsTheTotalOnceTheTrainerKnowsIt()
    {
        // An --epochs run: the command does not know the total; the trainer tells it before the first step.
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Interactive = InteractionSupport.No, Ansi = AnsiSupport.No,
        });
        var time = new ManualTime();
        TrainingProgress.Run(0, 1, p =>
        {
            time.Advance(100); // loading data is not training time
            p.Begin(2, 6);
            for (int s = 3; s <= 6; s++) { time.Advance(1); p.Report(s, 1.0 / s, 10); }
            Assert.Equal(6, p.TotalSteps);
        }, console, plainEvery: 2, time);
        Assert.Equal(["step 4/6 | loss 0.2500 | 10 tok/s | ETA 0:00:02", "step 6/6 | loss 0.1667 | 10 tok/s | ETA 0:00:00"],
            output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainingProgress(0, 1, null).Begin(3, 2));
    }

    [Fact]
    public void BeginUpdatesTheBarOnAnInteractiveConsole()
    {
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Interactive = InteractionSupport.Yes, Ansi = AnsiSupport.Yes,
        });
        var time = new ManualTime();
        TrainingProgress.Run(0, 1, p =>
        {
            p.Begin(0, 4);
            for (int s = 1; s <= 2; s++) { time.Advance(1); p.Report(s, 1.0 / s, 10); }
        }, console, time: time);
        string text = output.ToString();
        Assert.Contains("50%", text);
        Assert.DoesNotContain("100%", text); // half of 4 steps, not 2 of a total of 1
    }
}
