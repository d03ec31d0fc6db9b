using System.CommandLine;
using System.CommandLine.Invocation;

namespace Qwen2VL.Cli;

/// <summary>
/// The one entry point of the <c>qwen2vl</c> command line, used by <c>Program.cs</c> and by in-process tests: parses
/// (response files off: an argument starting with '@' is an argument, never a file to read), turns a parse error into
/// one line and exit code 2, and runs the command with every exception mapped by <see cref="CliErrors"/>.
/// </summary>
public static class CliApp
{
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("Qwen2VL.Compiler: run, check and train Qwen2-VL models compiled from the C# DSL.");
        foreach (var command in CommandRegistry.All())
            root.Subcommands.Add(command);
        return root;
    }

    /// <summary>
    /// System.CommandLine would replace "@path" by the lines of that file: with prompts that come from other people
    /// that is a local-file read, so the replacer is off.
    /// </summary>
    public static ParserConfiguration Parser { get; } = new() { ResponseFileTokenReplacer = null };

    public static Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null) =>
        RunAsync(CreateRoot(), args, output, error);

    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null) =>
        RunAsync(CreateRoot(), args, output, error).GetAwaiter().GetResult();

    /// <summary>Parses and runs <paramref name="args"/> on <paramref name="root"/>; returns the exit code.</summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var invocation = new InvocationConfiguration
        {
            Output = output ?? Console.Out,
            Error = error ?? Console.Error,
            EnableDefaultExceptionHandler = false,
        };
        try
        {
            var parse = root.Parse(args, Parser);
            if (parse.Errors.Count > 0 && parse.Action is null or ParseErrorAction)
            {
                invocation.Error.WriteLine(ParseErrorLine(parse));
                return CliErrors.UserError;
            }
            return await parse.InvokeAsync(invocation);
        }
        catch (Exception e)
        {
            return CliErrors.Report(e, invocation.Error);
        }
    }

    /// <summary>"error: &lt;first problem&gt; (see 'qwen2vl train --help')", on one line.</summary>
    private static string ParseErrorLine(ParseResult parse)
    {
        var first = CliErrors.OneLine(parse.Errors[0].Message);
        var more = parse.Errors.Count > 1 ? $" (and {parse.Errors.Count - 1} more)" : "";
        var path = new List<string>();
        for (var c = parse.CommandResult; c is not null; c = c.Parent as System.CommandLine.Parsing.CommandResult)
            if (c.Command is not RootCommand) path.Insert(0, c.Command.Name);
        return $"error: {first}{more} (see 'qwen2vl {string.Join(' ', path.Append("--help"))}')";
    }
}
