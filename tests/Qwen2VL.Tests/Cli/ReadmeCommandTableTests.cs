using System.Text.RegularExpressions;
using Qwen2VL.Tests.Text;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// The README's command table and the CLI agree: every command of <c>qwen2vl --help</c> has a row, and each row's
/// synopsis names exactly the options the command's <c>--help</c> lists (an alias counts for its option).
/// </summary>
public sealed partial class ReadmeCommandTableTests
{
    [Fact]
    public void EveryCommandsOptionsAreTheReadmeRowsOptions()
    {
        var rows = ReadmeRows();
        var commands = HelpSection(CliRunner.Run("--help").Stdout, "Commands:")
            .Select(line => line.Trim().Split(' ')[0]).Where(c => c.Length > 0).ToList();
        Assert.NotEmpty(commands);
        Assert.Equal(commands.Order(), rows.Keys.Order());

        var problems = new List<string>();
        foreach (var command in commands)
        {
            var help = CliRunner.Run(command, "--help");
            Assert.True(help.ExitCode == 0, help.Stderr);
            // Each option line: "  --name, --alias <value>  description" (the help flags themselves are left out).
            var options = HelpSection(help.Stdout, "Options:")
                .Select(line => OptionNames().Matches(line.Split("  ", StringSplitOptions.RemoveEmptyEntries)[0]).Select(m => m.Value).ToList())
                .Where(names => names.Count > 0 && !names.Contains("--help"))
                .ToList();
            var documented = OptionNames().Matches(rows[command]).Select(m => m.Value).ToHashSet();
            foreach (var names in options.Where(n => !n.Any(documented.Contains)))
                problems.Add($"{command}: {string.Join("/", names)} is an option but not in the README row");
            foreach (var flag in documented.Where(f => !options.Any(n => n.Contains(f))))
                problems.Add($"{command}: the README row names {flag}, which is not an option");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>command name → the synopsis in the first cell of its README table row.</summary>
    private static Dictionary<string, string> ReadmeRows()
    {
        var readme = File.ReadAllLines(Path.Combine(TokenizerTestData.RepoRoot, "README.md"));
        int start = Array.IndexOf(readme, "| command | what it does |");
        Assert.True(start >= 0, "README has no command table");
        var rows = new Dictionary<string, string>();
        for (int i = start + 2; i < readme.Length && readme[i].StartsWith("| `", StringComparison.Ordinal); i++)
        {
            var synopsis = readme[i][3..readme[i].IndexOf("` |", StringComparison.Ordinal)];
            rows[synopsis.Split(' ')[0]] = synopsis;
        }
        return rows;
    }

    /// <summary>The indented lines under a System.CommandLine help heading, continuation lines excluded.</summary>
    private static List<string> HelpSection(string help, string heading)
    {
        var lines = help.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        int at = lines.IndexOf(heading);
        Assert.True(at >= 0, $"no '{heading}' in:\n{help}");
        return lines.Skip(at + 1).TakeWhile(l => l.StartsWith(' ')).Where(l => l.TrimStart().StartsWith('-') || heading == "Commands:" && l.Length > 2 && l[2] != ' ').ToList();
    }

    [GeneratedRegex(@"--[a-z][a-z0-9-]*")]
    private static partial Regex OptionNames();
}
