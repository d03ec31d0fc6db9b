using Qwen2VL.Cli;

namespace Qwen2VL.Tests.Reliability;

/// <summary>The qwen2vl entry point (parse, run, map errors) called in-process, with its output captured.</summary>
internal static class InProcessCli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>stderr's lines, without the trailing empty one.</summary>
        public string[] ErrorLines => Stderr.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n', StringSplitOptions.RemoveEmptyEntries);

        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
    }

    public static Result Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, output, error);
        return new Result(code, output.ToString(), error.ToString());
    }
}
