using System.CommandLine;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>--strict</c>: checkpoint tensors the model never reads (a mistyped name, a layer of another architecture) are
/// an error instead of a warning. Without it they are listed once on stderr.
/// </summary>
internal sealed class StrictFlag
{
    private readonly Option<bool> _option = new("--strict") { Description = "Refuse a checkpoint holding tensors the model does not use (default: a warning listing them)." };

    public void AddTo(Command command) => command.Options.Add(_option);

    public bool Read(ParseResult parse) => parse.GetValue(_option);

    /// <summary>Warns about (or with <paramref name="strict"/> refuses) <paramref name="unused"/>.</summary>
    public static void Report(IReadOnlyList<string> unused, bool strict, TextWriter error)
    {
        if (unused.Count == 0) return;
        string names = string.Join(", ", unused.Take(5)) + (unused.Count > 5 ? $", … ({unused.Count - 5} more)" : "");
        string line = $"the checkpoint holds {unused.Count} tensor(s) the model does not use: {names}";
        if (strict) throw new WeightException(line + " (--strict)");
        error.WriteLine("warning: " + line);
    }
}
