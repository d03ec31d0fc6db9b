using System.CommandLine;
using System.Text.Json;
using Qwen2VL.Cli;
using Xunit;

namespace Qwen2VL.Tests.Text;

/// <summary>The <c>qwen2vl tokenize</c> command, invoked through System.CommandLine with captured output.</summary>
public sealed class TokenizeCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-tokcli-").FullName;
    private static readonly string Tokenizer = TokenizerTestData.TinyTokenizerPath;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var root = new RootCommand("test") { TokenizeCommand.Create() };
        var output = new StringWriter();
        var error = new StringWriter();
        var code = CliApp.RunAsync(root, args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Text_PrintsIdsThenDecodedText()
    {
        var (code, output, error) = Run("tokenize", "--tokenizer", Tokenizer, "--text", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>");
        Assert.Equal(0, code);
        Assert.Equal("", error);
        Assert.Equal("506 451 198 369 292 256 391 340 13 504\n<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", output.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void Jsonl_WritesIdsAndDecodedPerLine()
    {
        var input = Write("in.jsonl", "{\"text\": \"Describe this image.\", \"id\": 7}\n{\"text\": \"<|image_pad|>😀\"}\n");
        var outPath = Path.Combine(_dir, "out.jsonl");
        var (code, _, error) = Run("tokenize", "--tokenizer", Tokenizer, "--jsonl", input, "--out", outPath);
        Assert.Equal(0, code);
        Assert.Equal("", error);
        var lines = File.ReadAllLines(outPath);
        Assert.Equal(2, lines.Length);
        Assert.Equal("{\"ids\":[349,346,305,13],\"decoded\":\"Describe this image.\"}", lines[0]);
        using var second = JsonDocument.Parse(lines[1]);
        Assert.Equal(502, second.RootElement.GetProperty("ids")[0].GetInt32());
        Assert.Equal("<|image_pad|>😀", second.RootElement.GetProperty("decoded").GetString());
        Assert.Single(Directory.GetFiles(_dir, "out.jsonl*"));
    }

    [Theory]
    [InlineData("{\"text\": \"ok\"}\n{\"text\": \"ok\"\n", "line 2 is not valid JSON")]
    [InlineData("{\"text\": \"ok\"}\n{\"txt\": \"ok\"}\n", "line 2 has no \"text\" string")]
    [InlineData("[1, 2]\n", "line 1 has no \"text\" string")]
    [InlineData("{\"text\": 5}\n", "line 1 has no \"text\" string")]
    public void Jsonl_BadLine_IsOneLineOnStderr_AndLeavesNoOutput(string content, string expected)
    {
        var input = Write("in.jsonl", content);
        var outPath = Path.Combine(_dir, "out.jsonl");
        var (code, output, error) = Run("tokenize", "--tokenizer", Tokenizer, "--jsonl", input, "--out", outPath);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains(expected, error);
        Assert.Single(error.TrimEnd().Split('\n'));
        Assert.Empty(Directory.GetFiles(_dir, "out.jsonl*"));
    }

    [Fact]
    public void MissingFiles_AreNamed()
    {
        var missing = Path.Combine(_dir, "nope.json");
        var (code, _, error) = Run("tokenize", "--tokenizer", missing, "--text", "hi");
        Assert.Equal(2, code);
        Assert.Equal($"error: tokenizer file not found: {missing}", error.TrimEnd());

        (code, _, error) = Run("tokenize", "--tokenizer", Tokenizer, "--jsonl", missing, "--out", Path.Combine(_dir, "o.jsonl"));
        Assert.Equal(2, code);
        Assert.Equal($"error: input file not found: {missing}", error.TrimEnd());
        Assert.False(File.Exists(Path.Combine(_dir, "o.jsonl")));
    }

    [Theory]
    [InlineData("--text", "a", "--jsonl", "x.jsonl")]
    [InlineData("--jsonl", "x.jsonl")]
    [InlineData("--text", "a", "--out", "o.jsonl")]
    public void WrongOptionMix_IsRejected(params string[] options)
    {
        var (code, _, error) = Run(["tokenize", "--tokenizer", Tokenizer, .. options]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", error);
    }

    /// <summary>The real entry point (Program.cs and CommandRegistry), run as the built qwen2vl.dll.</summary>
    [Fact]
    public void Cli_RegistersTokenize()
    {
        var start = new System.Diagnostics.ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
        };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "qwen2vl.dll"), "tokenize", "--tokenizer", Tokenizer, "--text", "Describe this image." })
            start.ArgumentList.Add(arg);
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, error);
        Assert.Equal("349 346 305 13\nDescribe this image.\n", output.ReplaceLineEndings("\n"));
    }
}
