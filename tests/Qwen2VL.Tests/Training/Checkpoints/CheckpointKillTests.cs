using System.Diagnostics;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Tests.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training.Checkpoints;

/// <summary>
/// Kills a real process while it saves: a small program (compiled here with Roslyn against Qwen2VL.Runtime)
/// saves 16 MB checkpoints back to back, and the test kills it at a random moment, several times (until a kill
/// has interrupted a save). After every kill the latest checkpoint must load and be exactly the one its step
/// wrote, and the run resumes from it.
/// </summary>
public class CheckpointKillTests(ITestOutputHelper output)
{
    private const int WeightCount = 4 << 20;

    // The saver. Its weights are a function of the step, so the test can check any checkpoint it finds.
    private const string SaverSource = """
        using Qwen2VL.Runtime.Checkpoints;
        public static class Saver
        {
            public static void Main(string[] args)
            {
                string dir = args[0];
                for (long step = long.Parse(args[1]); ; step++)
                {
                    var w = new float[int.Parse(args[2])];
                    for (int i = 0; i < w.Length; i++) w[i] = step + i * 0.001f;
                    var trainer = new TrainerState { Step = step, Epoch = 0, DataPosition = new DataPosition(0, (int)step), RngState = [(byte)step] };
                    TrainingCheckpoint.Save(dir, new CheckpointContent([("model.w", w, [w.Length])], "{}", null, trainer),
                        new CheckpointOptions { KeepLast = 2 });
                    System.Console.WriteLine("saved " + step);
                }
            }
        }
        """;

    [Fact]
    public void KilledMidSaveLeavesALoadableLatestAndResumes()
    {
        using var dir = new TempDirectory();
        string saver = BuildSaver(dir.File("saver"));
        string checkpoints = dir.File("run");
        var random = new Random(1234);
        int interrupted = 0;
        long next = 1;
        // At least three kills, and more (up to ten) until one has landed inside a save, i.e. left a temp folder.
        for (int round = 0; round < 10 && (round < 3 || interrupted == 0); round++)
        {
            RunAndKill(saver, checkpoints, next, delayMs: random.Next(0, 120));
            bool leftovers = Directory.GetDirectories(checkpoints, ".tmp-*").Length + Directory.GetDirectories(checkpoints, ".trash-*").Length > 0;
            if (leftovers) interrupted++;

            CheckpointContent latest = TrainingCheckpoint.LoadLatest(checkpoints) ?? throw new Xunit.Sdk.XunitException("no latest after a kill");
            long step = latest.Trainer.Step;
            Assert.True(step >= next, $"latest step {step} is older than the resumed step {next}");
            AssertWrittenBy(step, latest);
            output.WriteLine($"round {round}: killed after saving up to step {step}; leftovers of an interrupted save: {leftovers}");
            next = step + 1;
        }
        // Half the kills land between the temp folder's creation and its rename; if none did, this test did not
        // test what it claims.
        Assert.True(interrupted > 0, "no kill interrupted a save");

        TrainingCheckpoint.Save(checkpoints, new CheckpointContent([("model.w", [1f], [1])], "{}", null,
            new TrainerState { Step = next, Epoch = 0, DataPosition = default, RngState = [] }), new CheckpointOptions { KeepLast = 2 });
        Assert.Empty(Directory.GetDirectories(checkpoints, ".*"));
        Assert.Equal(next, TrainingCheckpoint.LoadLatest(checkpoints)!.Trainer.Step);
    }

    private static void AssertWrittenBy(long step, CheckpointContent content)
    {
        float[] w = Assert.Single(content.Weights).Data;
        Assert.Equal(WeightCount, w.Length);
        for (int i = 0; i < w.Length; i += 997)
            Assert.Equal(step + i * 0.001f, w[i]);
        Assert.Equal(step + (w.Length - 1) * 0.001f, w[^1]);
        Assert.Equal(new DataPosition(0, (int)step), content.Trainer.DataPosition);
    }

    /// <summary>Starts the saver from <paramref name="step"/>, lets it finish one save, then kills it after a delay.</summary>
    private void RunAndKill(string saver, string checkpoints, long step, int delayMs)
    {
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { saver, checkpoints, step.ToString(), WeightCount.ToString() }) start.ArgumentList.Add(arg);
        using Process process = Process.Start(start)!;
        var firstSave = new TaskCompletionSource();
        process.OutputDataReceived += (_, e) => { if (e.Data?.StartsWith("saved ") == true) firstSave.TrySetResult(); };
        var errors = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (errors) errors.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            if (!firstSave.Task.Wait(TimeSpan.FromSeconds(120)) || process.HasExited)
                throw new Xunit.Sdk.XunitException($"the saver did not save (exited: {process.HasExited}): {errors}");
            Thread.Sleep(delayMs);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
    }

    /// <summary>The dotnet host running these tests (testhost runs under it), else the one on PATH.</summary>
    private static string DotnetHost()
    {
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }

    /// <summary>Compiles the saver into <paramref name="folder"/> with a runtimeconfig for this runtime and a copy of Qwen2VL.Runtime.dll.</summary>
    private static string BuildSaver(string folder)
    {
        Directory.CreateDirectory(folder);
        string runtimeDll = typeof(TrainingCheckpoint).Assembly.Location;
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Append(runtimeDll)
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("saver", [CSharpSyntaxTree.ParseText(SaverSource)], references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Disable));
        string dll = Path.Combine(folder, "saver.dll");
        var result = compilation.Emit(dll);
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        File.Copy(runtimeDll, Path.Combine(folder, Path.GetFileName(runtimeDll)));
        Version v = Environment.Version;
        File.WriteAllText(Path.Combine(folder, "saver.runtimeconfig.json"),
            $$"""{"runtimeOptions": {"tfm": "net{{v.Major}}.{{v.Minor}}", "framework": {"name": "Microsoft.NETCore.App", "version": "{{v.Major}}.{{v.Minor}}.0"} } }""");
        return dll;
    }
}
