using Qwen2VL.Cli;

// qwen2vl: each command lives in its own file under Commands/ and is registered in CommandRegistry; CliApp parses,
// runs and turns every error into one line and an exit code.
return await CliApp.RunAsync(args);
