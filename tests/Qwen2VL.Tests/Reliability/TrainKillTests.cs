using System.Diagnostics;
using Qwen2VL.Model.Training.Synthetic;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// <c>kill -9</c> at random moments of <c>train --save-every 1</c> (process start, set-up, steps, saves), 20 times,
/// rerunning the same command each time: the run that finishes holds the same bytes as one never interrupted —
/// weights, optimizer moments and trainer state.
/// </summary>
public sealed class TrainKillTests(ITestOutputHelper log) : IDisposable
{
    private const int Kills = 20;
    private const int Steps = 120;
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-kill-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void KilledAndResumedTwentyTimesEndsBitIdenticalToAnUninterruptedRun()
    {
        ShapesDataset.Generate(6, 5, Path.Combine(_dir, "data"));
        string data = Path.Combine(_dir, "data", ShapesDataset.JsonlName);
        string[] Args(string outDir) =>
            ["train", "--config", "shapes", "--data", data, "--out", outDir, "--steps", Steps.ToString(), "--batch", "2", "--save-every", "1", "--warmup", "2", "--seed", "7"];

        var clock = Stopwatch.StartNew();
        var reference = Path.Combine(_dir, "reference");
        var uninterrupted = InProcessCli.Run(Args(reference));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.ToString());
        var referenceTime = clock.Elapsed;

        var killed = Path.Combine(_dir, "killed");
        var rng = new Random(1207);
        int landed = 0;
        for (int i = 0; i < Kills; i++)
        {
            // Delays from process start-up to a second or so of steps: the kill lands wherever the run is then
            // (start-up, set-up, a step, a save), and twenty of them leave most of the run still to do.
            var delay = TimeSpan.FromSeconds(0.2 + rng.NextDouble() * 1.6);
            using var process = Start(Args(killed));
            if (!process.WaitForExit(delay))
            {
                process.Kill(); // SIGKILL: no handler, no clean-up
                process.WaitForExit();
                landed++;
            }
            else
            {
                Assert.True(process.ExitCode == 0, $"run {i} exited {process.ExitCode}: {process.StandardError.ReadToEnd()}");
            }
        }
        using (var last = Start(Args(killed)))
        {
            string stderr = last.StandardError.ReadToEnd();
            Assert.True(last.WaitForExit(TimeSpan.FromMinutes(2)));
            Assert.True(last.ExitCode == 0, stderr);
        }
        log.WriteLine($"{landed} of {Kills} kills landed before the run ended; reference run {referenceTime.TotalSeconds:F1} s, all {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(landed >= Kills * 3 / 4, $"only {landed} kills landed while training ran");

        string final = $"checkpoint-{Steps}";
        Assert.Equal(final, File.ReadAllText(Path.Combine(killed, "latest")).Trim());
        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json", "tokenizer.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(reference, final, file)).AsSpan()
                .SequenceEqual(File.ReadAllBytes(Path.Combine(killed, final, file))), $"{file} differs from the uninterrupted run's");
    }

    private static Process Start(string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "qwen2vl.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { }; // drained, so a full pipe never blocks the child
        process.BeginOutputReadLine();
        return process;
    }
}
