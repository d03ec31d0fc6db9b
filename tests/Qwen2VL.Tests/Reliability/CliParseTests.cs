using System.CommandLine;
using Qwen2VL.Cli;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// Parse errors (finding 11), response files (finding 9) and the one place that turns exceptions into what the user
/// sees (finding 3): one line, exit code 2 for bad input, never a stack trace, whatever is thrown.
/// </summary>
public sealed class CliParseTests
{
    [Theory]
    [InlineData("generate", "--bogus")]
    [InlineData("train", "--data")]
    [InlineData("train", "--out", "x")] // --data is required
    [InlineData("forward", "--generate", "many")]
    [InlineData("no-such-command")]
    [InlineData("tokenize", "--text", "hi", "extra", "--tokenizer")]
    public void AParseErrorIsOneLineAndExitCode2(params string[] args)
    {
        var r = InProcessCli.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.StartsWith("error: ", r.Stderr);
        Assert.Contains("--help", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void AnArgumentStartingWithAtIsTextNotAFileToRead()
    {
        var secret = Path.Combine(Path.GetTempPath(), "qvl-secret-" + Guid.NewGuid().ToString("N") + ".txt");
        File.WriteAllText(secret, "SECRET");
        try
        {
            var tokenizer = Path.Combine(AppContext.BaseDirectory, "shapes-model", "tokenizer.json");
            var r = InProcessCli.Run("tokenize", "--tokenizer", tokenizer, "--text", "@" + secret);
            Assert.True(r.ExitCode == 0, r.ToString());
            var decoded = r.Stdout.ReplaceLineEndings("\n").Split('\n')[1];
            Assert.Equal("@" + secret, decoded);
            Assert.DoesNotContain("SECRET", r.Stdout);
        }
        finally
        {
            File.Delete(secret);
        }
    }

    public static TheoryData<string> Throwables() =>
    [
        nameof(ModelException), nameof(IOException), nameof(UnauthorizedAccessException), nameof(OutOfMemoryException),
        nameof(InvalidOperationException), nameof(NullReferenceException), nameof(ArgumentOutOfRangeException),
        nameof(OverflowException), nameof(IndexOutOfRangeException), nameof(FormatException), nameof(AggregateException),
        nameof(System.Reflection.TargetInvocationException), nameof(System.Text.Json.JsonException), nameof(OperationCanceledException),
    ];

    private static object Throw(string name) => throw Make(name);

    private static Exception Make(string name) => name switch
    {
        nameof(ModelException) => new ModelException("bad input\nsecond line"),
        nameof(IOException) => new IOException("disk full"),
        nameof(UnauthorizedAccessException) => new UnauthorizedAccessException("denied"),
        nameof(OutOfMemoryException) => new OutOfMemoryException(),
        nameof(InvalidOperationException) => new InvalidOperationException("oops"),
        nameof(NullReferenceException) => new NullReferenceException(),
        nameof(ArgumentOutOfRangeException) => new ArgumentOutOfRangeException("x", "out of range"),
        nameof(OverflowException) => new OverflowException(),
        nameof(IndexOutOfRangeException) => new IndexOutOfRangeException(),
        nameof(FormatException) => new FormatException("fmt"),
        nameof(AggregateException) => new AggregateException(new ModelException("inner")),
        nameof(System.Reflection.TargetInvocationException) => new System.Reflection.TargetInvocationException(new IOException("inner")),
        nameof(System.Text.Json.JsonException) => new System.Text.Json.JsonException("json\nmore"),
        nameof(OperationCanceledException) => new OperationCanceledException(),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Throwables))]
    public async Task NoExceptionTypeEscapesAsAStackTrace(string type)
    {
        var root = new RootCommand("test");
        var boom = new Command("boom");
        boom.SetAction((ParseResult _) => (int)(object)Throw(type));
        root.Subcommands.Add(boom);
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await CliApp.RunAsync(root, ["boom"], output, error);
        var lines = error.ToString().ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.Single(lines);
        Assert.DoesNotContain("   at ", error.ToString());
        bool userError = type is nameof(ModelException) or nameof(IOException) or nameof(UnauthorizedAccessException)
            or nameof(OutOfMemoryException) or nameof(AggregateException) or nameof(System.Reflection.TargetInvocationException);
        Assert.Equal(userError ? 2 : type == nameof(OperationCanceledException) ? 130 : 1, code);
    }
}
