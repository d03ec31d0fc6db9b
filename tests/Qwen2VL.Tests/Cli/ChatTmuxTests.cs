using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// <c>chat</c> in a real terminal, as a user types into it: a tmux pane (keys sent with <c>send-keys</c>, the screen
/// read with <c>capture-pane</c>), so stdin is a TTY: the help line and the "&gt; " prompt show, <c>/image</c> attaches,
/// the answer streams onto the screen, <c>/exit</c> ends with exit code 0. Needs tmux (Debian: <c>apt-get install
/// tmux</c>; <c>.ci/run</c> installs it), as the MPI tests need mpirun. The tmux server is private to the test
/// (its own socket), so a user's sessions are never touched.
/// </summary>
public sealed class ChatTmuxTests(ITestOutputHelper log)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public void ChatAnswersInATmuxPane()
    {
        string tmux = new[] { "/usr/bin/tmux", "/usr/local/bin/tmux" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("tmux not found: this test needs it (apt-get install tmux; .ci/run installs it)");
        string socket = "qvl-chat-" + Guid.NewGuid().ToString("N")[..8];
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        string dll = Path.Combine(AppContext.BaseDirectory, "qwen2vl.dll");
        string sample = Path.Combine(AppContext.BaseDirectory, "shapes-model", "sample.png");
        // The pane outlives chat so its exit code can be read from the screen.
        string command = $"'{dotnet}' exec '{dll}' chat --device cpu; echo \"[exit $?]\"; sleep 300";
        try
        {
            Tmux(tmux, socket, "new-session", "-d", "-s", "chat", "-x", "120", "-y", "40", command);
            WaitFor(tmux, socket, screen => screen.Contains("/exit)") && screen.TrimEnd().EndsWith('>'), "the help line and the prompt");

            Type(tmux, socket, $"/image {sample}");
            WaitFor(tmux, socket, screen => screen.Contains("(image 1 attached"), "the image note");

            Type(tmux, socket, "What colour is the shape?");
            var screen = WaitFor(tmux, socket, s => Lines(s).Contains("purple") && s.Contains("tokens/s"), "the answer");
            Assert.Contains("> What colour is the shape?", screen);    // typed at the prompt, echoed by the terminal

            Type(tmux, socket, "/exit");
            WaitFor(tmux, socket, s => s.Contains("[exit 0]"), "chat to exit with code 0");
        }
        finally
        {
            RunTmux(tmux, socket, "kill-server");
        }
    }

    private static IEnumerable<string> Lines(string screen) => screen.Split('\n').Select(l => l.Trim());

    /// <summary>Types a line into the pane: the text literally (-l), then the Enter key.</summary>
    private static void Type(string tmux, string socket, string line)
    {
        Tmux(tmux, socket, "send-keys", "-t", "chat", "-l", line);
        Tmux(tmux, socket, "send-keys", "-t", "chat", "Enter");
    }

    /// <summary>Polls the pane's screen (and its scroll-back) until <paramref name="done"/> holds; fails with the screen after 90 s.</summary>
    private string WaitFor(string tmux, string socket, Func<string, bool> done, string what)
    {
        var clock = Stopwatch.StartNew();
        string screen = "";
        while (clock.Elapsed < Patience)
        {
            screen = Tmux(tmux, socket, "capture-pane", "-p", "-t", "chat", "-S", "-200");
            if (done(screen)) return screen;
            Thread.Sleep(100);
        }
        log.WriteLine(screen);
        throw new TimeoutException($"no sign of {what} in the tmux pane after {Patience.TotalSeconds} s; the screen:\n{screen}");
    }

    private static string Tmux(string tmux, string socket, params string[] args)
    {
        var (code, output, error) = RunTmux(tmux, socket, args);
        Assert.True(code == 0, $"tmux {string.Join(' ', args)} failed ({code}): {error}");
        return output;
    }

    private static (int Code, string Output, string Error) RunTmux(string tmux, string socket, params string[] args)
    {
        var start = new ProcessStartInfo(tmux) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-L");
        start.ArgumentList.Add(socket);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill();
            return (-1, "", "tmux did not answer in 30 s");
        }
        return (process.ExitCode, output.Result, error.Result);
    }
}
