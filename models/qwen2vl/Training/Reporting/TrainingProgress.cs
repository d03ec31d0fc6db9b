using System.Globalization;
using Spectre.Console;

namespace Qwen2VL.Model.Training.Reporting;

/// <summary>
/// Training progress: loss, tokens per second (since this run started) and the time left, estimated from the
/// mean time per step so far. On a terminal it is a Spectre.Console progress bar; when output is redirected
/// (a log file, CI) it prints one plain line every <c>plainEvery</c> steps and at the last step:
/// <c>step 20/100 | loss 2.3456 | 1234 tok/s | ETA 0:01:23</c>.
/// </summary>
public sealed class TrainingProgress
{
    private long _startStep;
    private readonly TimeProvider _time;
    private long _started;
    private readonly TextWriter? _plain;
    private readonly int _plainEvery;
    private Action<TrainingProgress>? _onReport;
    private long _tokens;

    public long TotalSteps { get; private set; }
    public long Step { get; private set; }
    public double Loss { get; private set; } = double.NaN;
    public double TokensPerSecond { get; private set; }

    /// <summary>Time left, or null before the first step of this run.</summary>
    public TimeSpan? Eta { get; private set; }

    /// <summary>A plain-text reporter writing to <paramref name="plain"/> every <paramref name="plainEvery"/> steps.</summary>
    public TrainingProgress(long startStep, long totalSteps, TextWriter? plain, int plainEvery = 10, TimeProvider? time = null)
    {
        if (totalSteps <= 0 || startStep < 0 || startStep > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(startStep), $"progress from step {startStep} of {totalSteps} is not a valid range");
        ArgumentOutOfRangeException.ThrowIfLessThan(plainEvery, 1);
        _startStep = startStep;
        TotalSteps = totalSteps;
        Step = startStep;
        _plain = plain;
        _plainEvery = plainEvery;
        _time = time ?? TimeProvider.System;
        _started = _time.GetTimestamp();
    }

    /// <summary>
    /// Runs <paramref name="training"/> with a progress reporter: a live bar when <paramref name="console"/> (the
    /// terminal by default) is interactive and not redirected, otherwise plain lines on its output.
    /// </summary>
    public static void Run(long startStep, long totalSteps, Action<TrainingProgress> training,
        IAnsiConsole? console = null, int plainEvery = 10, TimeProvider? time = null)
    {
        IAnsiConsole target = console ?? AnsiConsole.Console;
        bool live = console is null
            ? !Console.IsOutputRedirected && target.Profile.Capabilities.Interactive
            : target.Profile.Capabilities.Interactive;
        if (!live)
        {
            training(new TrainingProgress(startStep, totalSteps, target.Profile.Out.Writer, plainEvery, time));
            return;
        }
        target.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
            .Start(context =>
            {
                var progress = new TrainingProgress(startStep, totalSteps, plain: null, plainEvery, time);
                ProgressTask task = context.AddTask(progress.StepLine(), autoStart: true, maxValue: totalSteps);
                task.Value = startStep;
                progress._onReport = p =>
                {
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    task.Description = p.StepLine();
                };
                training(progress);
            });
    }

    /// <summary>
    /// Sets where this run starts and how many steps the schedule has, once the trainer knows (the total of an
    /// <c>--epochs</c> run depends on the data; a resumed run starts past 0). Restarts the clock and the token count.
    /// </summary>
    public void Begin(long startStep, long totalSteps)
    {
        if (totalSteps <= 0 || startStep < 0 || startStep > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(startStep), $"progress from step {startStep} of {totalSteps} is not a valid range");
        _startStep = startStep;
        TotalSteps = totalSteps;
        Step = startStep;
        _tokens = 0;
        _started = _time.GetTimestamp();
        _onReport?.Invoke(this);
    }

    /// <summary>Records that optimizer step <paramref name="step"/> finished with this loss after <paramref name="tokens"/> tokens.</summary>
    public void Report(long step, double loss, long tokens)
    {
        Step = step;
        Loss = loss;
        _tokens += tokens;
        double seconds = _time.GetElapsedTime(_started).TotalSeconds;
        TokensPerSecond = seconds > 0 ? _tokens / seconds : 0;
        long done = step - _startStep;
        Eta = done > 0 ? TimeSpan.FromSeconds(seconds / done * Math.Max(0, TotalSteps - step)) : null;
        _onReport?.Invoke(this);
        if (_plain is not null && (done % _plainEvery == 0 || step >= TotalSteps))
        {
            _plain.WriteLine(StepLine());
            _plain.Flush();
        }
    }

    /// <summary>"step 20/100 | loss 2.3456 | 1234 tok/s | ETA 0:01:23": the bar's text and the plain line.</summary>
    public string StepLine() => $"step {Step}/{TotalSteps} | {StatusLine()}";

    /// <summary>"loss 2.3456 | 1234 tok/s | ETA 0:01:23".</summary>
    public string StatusLine() => string.Create(CultureInfo.InvariantCulture,
        $"loss {Loss:F4} | {TokensPerSecond:F0} tok/s | ETA {FormatEta(Eta)}");

    public static string FormatEta(TimeSpan? eta) => eta is { } t
        ? string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}")
        : "?";
}
