using System.CommandLine;
using Qwen2VL.Model.Training.Distributed;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Distributed.Mpi;

namespace Qwen2VL.Cli;

/// <summary>The parallel layout a command was asked for (<c>--dp</c>, <c>--zero</c>, <c>--comm</c>, buckets).</summary>
internal sealed record ParallelOptions(int DataParallel, int Zero, CommBackend Backend, bool CommGiven, bool Overlap, int BucketElements)
{
    /// <summary>True when the run needs a communicator: more than one rank, or a backend named explicitly.</summary>
    public bool IsParallel => DataParallel > 1 || CommGiven;

    /// <summary>How errors name the layout.</summary>
    public string Layout => $"--dp {DataParallel}";

    /// <summary>Under mpirun, the number of processes must be tp·pp·dp (here: dp), checked before anything is read or written.</summary>
    public void CheckWorld()
    {
        int world = CommLauncher.MpiWorldSize();
        if (MpiCommunicator.UnderMpirun && Backend != CommBackend.Threads && world != DataParallel)
            throw new CommException($"mpirun started {world} processes but {Layout} needs {DataParallel} ranks (tp·pp·dp): run mpirun -np {DataParallel}");
    }
}

/// <summary>
/// <c>--dp N</c> data-parallel ranks, <c>--zero 1</c> (train only) the AdamW state sharded over them, <c>--comm</c>
/// the collective backend, <c>--bucket-mb</c> the gradient bucket size, <c>--no-overlap</c> to reduce after the
/// backward pass instead of during it (for measuring what the overlap hides).
/// </summary>
internal sealed class ParallelFlags
{
    private readonly Option<int> _dp = new("--dp") { DefaultValueFactory = _ => 1, Description = "Data-parallel ranks: each takes its share of the batch; gradients are all-reduced (under mpirun: one process per rank, -np must equal it)." };
    private readonly Option<int>? _zero;
    private readonly Option<string?> _comm = new("--comm") { Description = "Collective backend: threads, mpi or nccl (default: mpi under mpirun, else threads)." };
    private readonly Option<double> _bucketMb = new("--bucket-mb") { DefaultValueFactory = _ => DataParallelGroup.DefaultBucketElements * 4.0 / (1 << 20), Description = "Gradient bucket size in MiB (a bucket is reduced as soon as its layers' gradients are final)." };
    private readonly Option<bool> _noOverlap = new("--no-overlap") { Description = "Reduce the gradient buckets after the backward pass instead of during it." };

    public ParallelFlags(bool zero)
    {
        if (zero) _zero = new Option<int>("--zero") { DefaultValueFactory = _ => 0, Description = "ZeRO stage: 1 shards the AdamW state over the --dp ranks (reduce-scatter, update a block, all-gather)." };
    }

    public void AddTo(Command command)
    {
        foreach (var o in new Option?[] { _dp, _zero, _comm, _bucketMb, _noOverlap })
            if (o is not null) command.Options.Add(o);
    }

    public ParallelOptions Read(ParseResult parse)
    {
        int dp = parse.GetValue(_dp), zero = _zero is null ? 0 : parse.GetValue(_zero);
        double mb = parse.GetValue(_bucketMb);
        if (dp < 1) throw new ModelException($"--dp must be ≥ 1, got {dp}");
        if (zero is not (0 or 1)) throw new ModelException($"--zero must be 0 or 1 (ZeRO-1 shards the optimizer state), got {zero}");
        if (zero == 1 && dp < 2) throw new ModelException("--zero 1 shards the optimizer state over the --dp ranks: give --dp 2 or more");
        if (!(mb > 0) || mb * (1 << 18) > int.MaxValue) throw new ModelException($"--bucket-mb must be > 0 and below 8192, got {mb}");
        string? comm = parse.GetValue(_comm);
        return new ParallelOptions(dp, zero, CommLauncher.Parse(comm), comm is not null, !parse.GetValue(_noOverlap), Math.Max(1, (int)(mb * (1 << 18))));
    }
}
