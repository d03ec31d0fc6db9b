using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary><c>qwen2vl serve</c> as a real process: it listens where it says, answers, and Ctrl-C (SIGINT) stops it cleanly.</summary>
[Collection(SerialCollection.Name)]
public sealed class ServeCommandTests
{
    [Fact]
    public async Task ServesUntilCtrlCThenExitsZero()
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "exec", Path.Combine(AppContext.BaseDirectory, "qwen2vl.dll"), "serve", "--port", "0", "--api-key", "k" })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var banner = await process.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            var url = Regex.Match(banner ?? "", @"on (http://127\.0\.0\.1:\d+) ").Groups[1].Value;
            Assert.True(url.Length > 0, $"no address in '{banner}'");

            using var http = new HttpClient { BaseAddress = new Uri(url) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "k");
            var body = "{\"messages\": [{\"role\": \"user\", \"content\": \"What colour is the shape?\"}], \"max_tokens\": 3}";
            var answer = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());

            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString()])) kill.WaitForExit();
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), "serve did not stop on SIGINT");
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("stopped", await process.StandardError.ReadToEndAsync());
            await stdout;
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    [Theory]
    [InlineData("--host", "example.com", "--host must be an IP address")]
    [InlineData("--max-batch", "0", "--max-batch must be > 0")]
    public void BadOptionsAreOneLineAndExitTwo(string flag, string value, string message)
    {
        var result = CliRunner.Run("serve", flag, value, "--port", "0");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Stderr);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }
}
