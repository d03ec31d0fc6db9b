using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// Tests that time a child process's reaction (serve stopping on SIGINT within 30 s) run after the parallel ones, alone:
/// on a 2-core machine the ILGPU CPU-accelerator tests running beside them starve the child for longer than that.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial (timed child processes)";
}
