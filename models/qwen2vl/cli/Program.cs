using System.CommandLine;
using Qwen2VL.Cli;

// qwen2vl: each command lives in its own file under Commands/ and is registered here.
var root = new RootCommand("Qwen2VL.Compiler: run, check and train Qwen2-VL models compiled from the C# DSL.");
foreach (var command in CommandRegistry.All())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
