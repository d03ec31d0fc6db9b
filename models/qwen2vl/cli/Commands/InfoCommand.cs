using System.CommandLine;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary><c>info</c>: prints the version and the devices this machine offers.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Print the version and the compute devices available here.");
        command.SetAction(_ =>
        {
            Console.WriteLine($"qwen2vl {typeof(InfoCommand).Assembly.GetName().Version}");
            Console.WriteLine($"cpu: {Environment.ProcessorCount} threads");
            Console.WriteLine(CudaDiscovery.Status(new CudaDriverProbe()));
            Console.WriteLine("ilgpu-cpu: ILGPU's CPU accelerator (the GPU kernels run on the CPU; slow, for testing them)");
            Console.WriteLine($"default --device: {ComputeContext.DefaultKind().Name()}");
            return 0;
        });
        return command;
    }
}
