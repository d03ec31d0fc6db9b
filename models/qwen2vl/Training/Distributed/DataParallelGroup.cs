using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Distributed;
using Qwen2VL.Runtime.Distributed.DataParallel;
using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Model.Training.Distributed;

/// <summary>
/// One rank of a data-parallel group for training and for <c>forward --grads</c>: the model's gradients go into
/// <see cref="Buckets"/> (reduced while the backward pass runs), the optimizer is <see cref="Optimizer"/> (ZeRO-1 or
/// replicated). Every rank runs its share of each micro-batch; each share's gradient is weighted by its label tokens
/// over the label tokens of the whole step on all ranks, so the summed gradient and the loss are those of one device
/// running the whole batch.
/// </summary>
public sealed class DataParallelGroup : IDisposable
{
    /// <summary>Bucket size when none is given: 1 Mi floats (4 MiB), between DDP's 25 MB default and a layer of the tiny model.</summary>
    public const int DefaultBucketElements = 1 << 20;

    private readonly ICommunicator _comm;

    public DataParallelGroup(Qwen2VLModel model, ICommunicator comm, bool zero, bool overlap = true, int bucketElements = DefaultBucketElements)
    {
        var parameters = model.Parameters ?? throw new ModelException("data parallelism needs a model loaded for training");
        _comm = comm;
        Optimizer = new DataParallelOptimizer(model.Context, parameters, comm, zero);
        Buckets = new GradientBuckets(model.Context, parameters, comm, model.GradientCompletionOrder,
            Optimizer.Zero ? Optimizer.Owners : null, bucketElements, overlap);
    }

    public int Rank => _comm.Rank;
    public int Size => _comm.Size;
    public ICommunicator Communicator => _comm;
    public GradientBuckets Buckets { get; }
    public DataParallelOptimizer Optimizer { get; }

    /// <summary>This rank's rows of a batch (null: none).</summary>
    public ForwardInputs? Share(Qwen2VLModel model, ForwardInputs batch) =>
        BatchShards.Rows(batch, _comm.Rank, _comm.Size, model.TokenIds, model.SpatialMerge);

    /// <summary>This rank's samples of a batch of sample indices (a contiguous block, as <see cref="BatchShards"/>).</summary>
    public IReadOnlyList<int> Share(IReadOnlyList<int> batch)
    {
        var blocks = BlockPartition.Balanced(batch.Count, _comm.Size);
        return batch.Skip(blocks.Start(_comm.Rank)).Take(blocks.Count(_comm.Rank)).ToArray();
    }

    /// <summary>
    /// The forward and backward passes of one optimizer step's micro-batches (this rank's share of each; null where it
    /// has none), reduced over the group: returns the mean loss over every rank's label tokens (NaN when there are
    /// none) and the tokens of the whole step. The gradients are then reduced (all-reduced, or under ZeRO-1 reduced
    /// onto their owners).
    /// </summary>
    public (double Loss, long Tokens) AccumulateGradients(Qwen2VLModel model, IReadOnlyList<(ForwardInputs Inputs, long[]? Positions)?> micro)
    {
        var local = micro.Select(m => m is { } x ? (double)Trainer.LabelTokens(x.Inputs) : 0).ToArray();
        var totals = new double[micro.Count + 1];
        local.CopyTo(totals, 0);
        totals[^1] = micro.Sum(m => m is { } x ? (double)x.Inputs.Batch * x.Inputs.Seq : 0);
        _comm.AllReduceSum(CommBuffer.Of(totals));
        double total = totals.Take(micro.Count).Sum();
        long tokens = (long)totals[^1];
        if (total == 0) return (double.NaN, tokens); // no label token anywhere: no loss, no gradient, on every rank alike

        double loss = 0;
        for (int k = 0; k < micro.Count; k++)
        {
            if (k == micro.Count - 1) Buckets.Arm(); // the step's last backward pass reduces as it goes
            if (micro[k] is not { } m || local[k] == 0) continue;
            double share = local[k] / total;
            var result = model.ForwardBackward(m.Inputs, Buckets, m.Positions, gradScale: (float)share);
            loss += result.Loss * share;
        }
        Buckets.Finish();
        var sum = new[] { loss };
        _comm.AllReduceSum(CommBuffer.Of(sum));
        return (sum[0], tokens);
    }

    public void Dispose() => Buckets.Dispose();
}
