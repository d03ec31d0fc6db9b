using System.CommandLine;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Distributed;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>collectives</c>: runs every collective of the chosen backend on a world of ranks and checks each result
/// against the rank-order sums every rank can compute alone; rank 0 prints one line per collective with a digest of
/// its bits (equal digests across backends: equal bits). Under <c>mpirun -np N</c> the world is the N processes.
/// </summary>
internal static class CollectivesCommand
{
    public static Command Create()
    {
        var comm = new Option<string?>("--comm") { Description = "threads, mpi or nccl (default: mpi under mpirun, else threads)" };
        var ranks = new Option<int?>("--ranks") { Description = "Ranks of the world (threads: default 2; mpi/nccl: the processes mpirun started)" };
        var command = new Command("collectives", "Check every collective (all-reduce, reduce-scatter, all-gather, broadcast, send/receive, barrier, split) on a world of ranks.");
        command.Options.Add(comm);
        command.Options.Add(ranks);
        command.SetAction(parse => Run(parse.GetValue(comm), parse.GetValue(ranks)));
        return command;
    }

    private static int Run(string? commName, int? ranks)
    {
        var backend = CommLauncher.Parse(commName);
        int size = ranks ?? (backend == CommBackend.Threads ? 2 : MpiWorldSize());
        var lines = CommLauncher.Run(backend, size, $"--ranks {size}", comm =>
        {
            var results = CollectiveCheck.Run(comm);
            // Every rank's failures count: the exit code is the same on every rank.
            var failed = new double[] { results.Count(r => !r.Passed) };
            comm.AllReduceSum(CommBuffer.Of(failed));
            return (Results: results, Failed: (int)failed[0], comm.Backend, comm.Size);
        });
        if (lines.Results is null) return 0; // not rank 0: rank 0 prints, and its exit code counts every rank's failures
        Console.WriteLine($"{lines.Backend}, {lines.Size} ranks:");
        foreach (var r in lines.Results)
            Console.WriteLine($"  {r.Name,-48} {(r.Passed ? "ok" : "MISMATCH"),-8} {r.Digest}{(r.Passed ? "" : "  " + r.Detail)}");
        Console.WriteLine(lines.Failed == 0 ? "All collectives match." : $"{lines.Failed} collective results do not match (over all ranks).");
        return lines.Failed == 0 ? 0 : 1;
    }

    private static int MpiWorldSize() =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? Environment.GetEnvironmentVariable("PMI_SIZE"), out int n) ? n : 1;
}
