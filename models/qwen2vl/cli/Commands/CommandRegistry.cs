using System.CommandLine;

namespace Qwen2VL.Cli;

/// <summary>The list of commands, one line each, so adding a command touches one place.</summary>
internal static class CommandRegistry
{
    public static IEnumerable<Command> All()
    {
        yield return InfoCommand.Create();
        yield return TokenizeCommand.Create();
        yield return ForwardCommand.Create();
        yield return GenerateCommand.Create();
        yield return ChatCommand.Create();
        yield return CompileCommand.Create();
        yield return TrainCommand.Create();
        yield return TrainShapesCommand.Create();
        yield return CollectivesCommand.Create();
        yield return ServeCommand.Create();
    }
}
