using System.Diagnostics;
using System.IO.Compression;
using Microsoft.Extensions.AI;
using Qwen2VL.ChatClient;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Serving;

/// <summary>
/// <see cref="Qwen2VLChatClient"/> as an <see cref="IChatClient"/>: in process, from the separate console project of
/// its package README (samples/Qwen2VL.ChatSample, run as its own process), and as the package <c>dotnet pack</c> makes.
/// </summary>
public sealed class ChatClientTests(ITestOutputHelper log)
{
    // tests/Qwen2VL.Tests/bin/<Configuration>/net10.0/ → the repository root, and the configuration built.
    private static readonly string Root = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."));
    private static readonly string Configuration = new DirectoryInfo(Path.Combine(AppContext.BaseDirectory, "..")).Name;
    private static string SampleDir => Path.Combine(Root, "samples", "Qwen2VL.ChatSample");
    private static string ClientDir => Path.Combine(Root, "models", "qwen2vl", "client");

    private static ChatMessage Question(string text = "What colour is the shape?") =>
        new(ChatRole.User, [new DataContent(File.ReadAllBytes(Qwen2VLChatClient.DefaultSampleImage), "image/png"), new TextContent(text)]);

    [Fact]
    public async Task AnswersPurpleStreamingAndNot()
    {
        using IChatClient client = Qwen2VLChatClient.LoadDefault();
        var response = await client.GetResponseAsync([Question()]);
        Assert.Equal("purple", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.True(response.Usage?.InputTokenCount > 16);

        var streamed = new List<string>();
        await foreach (var update in client.GetStreamingResponseAsync([Question()]))
            streamed.Add(update.Text);
        Assert.Equal("purple", string.Concat(streamed));
        Assert.Equal("qwen2vl", client.GetService<ChatClientMetadata>()?.ProviderName);
    }

    [Fact]
    public async Task MapsChatOptions()
    {
        using IChatClient client = Qwen2VLChatClient.LoadDefault();
        var cut = await client.GetResponseAsync([Question()], new ChatOptions { StopSequences = ["rp"] });
        Assert.Equal("pu", cut.Text);
        var one = await client.GetResponseAsync([Question()], new ChatOptions { MaxOutputTokens = 1 });
        Assert.Equal(ChatFinishReason.Length, one.FinishReason);
        Assert.Equal(1, one.Usage?.OutputTokenCount);
        // A system prompt and a earlier turn are part of the prompt: more input tokens, the same kind of answer.
        var multi = await client.GetResponseAsync([new ChatMessage(ChatRole.System, "Answer in one word."), Question(),
            new ChatMessage(ChatRole.Assistant, "purple"), Question()]);
        Assert.True(multi.Usage?.InputTokenCount > 2 * cut.Usage?.InputTokenCount);
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new UriContent("https://example.com/a.png", "image/png")])]));
    }

    [Fact]
    public void TheSampleProjectIsTheReadmeProgram()
    {
        var readme = File.ReadAllText(Path.Combine(ClientDir, "README.md"));
        var program = File.ReadAllText(Path.Combine(SampleDir, "Program.cs"));
        Assert.Contains("```csharp\n" + program + "```", readme);
        Assert.InRange(program.TrimEnd().Split('\n').Length, 8, 10);
    }

    [Fact]
    public void TheSampleConsoleProjectAnswersPurple()
    {
        var dll = Path.Combine(SampleDir, "bin", Configuration, "net10.0", "Qwen2VL.ChatSample.dll");
        Assert.True(File.Exists(dll), $"{dll} was not built (the test project references the sample so that it is)");
        var (code, stdout, stderr) = Run(Path.GetDirectoryName(dll)!, "exec", dll);
        Assert.True(code == 0, stderr);
        Assert.Equal("purple", stdout.Trim());
    }

    [Fact]
    public void PackMakesAPackageWithTheReadmeTheAssembliesAndTheDefaultModel()
    {
        var output = Directory.CreateTempSubdirectory("qvl-pack-").FullName;
        try
        {
            var (code, stdout, stderr) = Run(Root, "pack", Path.Combine(ClientDir, "Qwen2VL.ChatClient.csproj"), "-c", Configuration, "--no-build", "-p:BuildProjectReferences=false", "-o", output);
            Assert.True(code == 0, stdout + stderr);
            var package = Directory.GetFiles(output, "Qwen2VL.ChatClient.*.nupkg").Single();
            using var zip = ZipFile.OpenRead(package);
            var names = zip.Entries.Select(e => e.FullName).ToHashSet();
            foreach (var dll in new[] { "Qwen2VL.ChatClient.dll", "Qwen2VL.Model.dll", "Qwen2VL.Runtime.dll", "Qwen2VL.Dsl.dll" })
                Assert.Contains($"lib/net10.0/{dll}", names);
            Assert.Contains("contentFiles/any/any/qwen2vl-default-model/model.safetensors", names);
            using (var readme = new StreamReader(zip.GetEntry("README.md")!.Open()))
                Assert.Contains(File.ReadAllText(Path.Combine(SampleDir, "Program.cs")), readme.ReadToEnd());
            using var nuspec = new StreamReader(zip.GetEntry("Qwen2VL.ChatClient.nuspec")!.Open());
            var spec = nuspec.ReadToEnd();
            Assert.Contains("id=\"Microsoft.Extensions.AI.Abstractions\"", spec);
            Assert.Contains("id=\"ILGPU\"", spec);
            Assert.DoesNotContain("id=\"Qwen2VL.Model\"", spec);
            log.WriteLine($"{Path.GetFileName(package)}: {new FileInfo(package).Length / 1024} KiB, {names.Count} entries");
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    private static (int Code, string Stdout, string Stderr) Run(string workingDirectory, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', args)} did not finish in 2 minutes");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
