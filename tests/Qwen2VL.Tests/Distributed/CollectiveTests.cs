using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Distributed.Threads;
using Qwen2VL.Tests.Cli;
using Xunit;

namespace Qwen2VL.Tests.Distributed;

/// <summary>
/// Every collective on the threads backend (1–4 ranks) and on the MPI backend under <c>mpirun -np 2</c> and
/// <c>-np 4</c>: each result equals the rank-order fold each rank computes alone, and MPI's results have the same bits
/// as the threads backend's (equal digests). Errors: ranks that disagree, a deadlock, blocks that do not cover the
/// buffer, a world of the wrong size, a missing NCCL.
/// </summary>
public sealed class CollectiveTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void EveryCollectiveGivesTheRankOrderResultOnThreads(int ranks)
    {
        var perRank = ThreadWorld.Run(ranks, CollectiveCheck.Run);
        foreach (var results in perRank)
            Assert.All(results, r => Assert.True(r.Passed, $"{r.Name}: {r.Detail}"));
        // One rank has no ring of plain sends and no uneven layout (3 checks): 14 checks, else 18.
        Assert.Equal(ranks == 1 ? 14 : 18, perRank[0].Count);
    }

    /// <summary>The check can fail: the values make the sum's order visible in its bits.</summary>
    [Fact]
    public void TheOrderOfTheSumShowsInTheBits()
    {
        int differing = 0;
        for (int i = 0; i < 1003; i++)
        {
            float forward = CollectiveCheck.Value(0, i) + CollectiveCheck.Value(1, i) + CollectiveCheck.Value(2, i);
            float backward = CollectiveCheck.Value(2, i) + CollectiveCheck.Value(1, i) + CollectiveCheck.Value(0, i);
            if (BitConverter.SingleToInt32Bits(forward) != BitConverter.SingleToInt32Bits(backward)) differing++;
        }
        Assert.True(differing > 50, $"only {differing} of 1003 sums depend on the order");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void EveryCollectiveUnderMpirunMatchesTheThreadsBackendBitForBit(int ranks)
    {
        var run = MpiRunner.Run(ranks, "collectives");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}\n{run.Stdout}\n{run.Stderr}");
        Assert.Contains($"mpi, {ranks} ranks:", run.Stdout);
        Assert.Contains("All collectives match.", run.Stdout);
        var threads = ThreadWorld.Run(ranks, CollectiveCheck.Run)[0];
        foreach (var r in threads)
            Assert.Matches($@"\n  {System.Text.RegularExpressions.Regex.Escape(r.Name)} +ok +{r.Digest}\r?\n", run.Stdout);
    }

    [Fact]
    public void RanksThatCallDifferentCollectivesFailWithOneLineNamingThem()
    {
        var e = Assert.Throws<CommException>(() => ThreadWorld.Run(2, comm =>
        {
            if (comm.Rank == 0) comm.AllReduceSum(CommBuffer.Of(new float[4]));
            else comm.Broadcast(CommBuffer.Of(new float[4]), 0);
        }));
        Assert.Contains("ranks called different collectives", e.Message);
        Assert.Contains("AllReduceSum", e.Message);
        Assert.Contains("Broadcast", e.Message);
    }

    [Fact]
    public void ADeadlockFailsAfterTheTimeoutNamingTheOperation()
    {
        var e = Assert.Throws<CommException>(() => ThreadWorld.Run(2, comm =>
            comm.Receive(CommBuffer.Of(new float[3]), 1 - comm.Rank, 5), TimeSpan.FromSeconds(1)));
        Assert.Contains("Receive", e.Message);
        Assert.Contains("deadlock", e.Message);
    }

    [Fact]
    public void BlocksThatDoNotCoverTheBufferAreAnError()
    {
        var e = Assert.Throws<CommException>(() => ThreadWorld.Run(2, comm =>
            comm.ReduceScatterSum(CommBuffer.Of(new float[10]), CommBuffer.Of(new float[4]), [4, 4])));
        Assert.Contains("blocks of 8 elements in all for a buffer of 10", e.Message);
    }

    [Fact]
    public void AWorldOfTheWrongSizeIsOneClearLine()
    {
        var run = MpiRunner.Run(2, "collectives", "--ranks", "3");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("error: mpirun started 2 processes but --ranks 3 needs 3 ranks", run.Stderr);
        Assert.DoesNotContain("   at ", run.Stderr);
    }

    [Fact]
    public void WithoutNcclTheNcclBackendIsOneClearLine()
    {
        var run = CliRunner.Run("collectives", "--comm", "nccl");
        Assert.Equal(2, run.ExitCode);
        Assert.Matches(@"^error: --comm nccl: no (CUDA driver|NCCL library) found \(tried [^)]+\)", run.Stderr);
        Assert.Single(run.Stderr.Trim().Split('\n'));
    }
}
