using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Runtime.Distributed.DataParallel;

/// <summary>
/// The optimizer side of data parallelism. Plain DP: every rank holds the whole AdamW state and, after the gradient
/// all-reduce, takes the same step (the sums are deterministic, so the ranks stay bit-identical). ZeRO-1 (Rajbhandari
/// et al.): rank r owns block r of the trainable range (<see cref="BlockPartition.Balanced"/>) and only that block's
/// moments — 1/DP of the optimizer state; the gradients arrive reduce-scattered to their owners
/// (<see cref="GradientBuckets"/>), each rank clips with the global norm (an all-reduce of the blocks' sums of squares),
/// updates its block with the fused AdamW kernel, and an all-gather gives every rank the new weights.
/// </summary>
public sealed class DataParallelOptimizer
{
    private readonly ComputeContext _ctx;
    private readonly ParameterSet _parameters;
    private readonly ICommunicator _comm;
    private readonly int[] _counts;

    public DataParallelOptimizer(ComputeContext ctx, ParameterSet parameters, ICommunicator comm, bool zero)
    {
        _ctx = ctx;
        _parameters = parameters;
        _comm = comm;
        Zero = zero && comm.Size > 1;
        var blocks = BlockPartition.Balanced(parameters.TrainableEnd, comm.Size);
        _counts = Enumerable.Range(0, comm.Size).Select(blocks.Count).ToArray();
        Owners = Enumerable.Range(0, comm.Size).Select(r => (blocks.Start(r), blocks.Count(r))).ToArray();
        if (Zero) parameters.ShardOptimizerState(blocks.Start(comm.Rank), blocks.Count(comm.Rank));
    }

    public bool Zero { get; }

    /// <summary>Each rank's block (start, count) of the trainable range: the ZeRO-1 ownership.</summary>
    public IReadOnlyList<(int Start, int Count)> Owners { get; }

    /// <summary>Bytes of optimizer state this rank holds (AdamW's m and v, f32).</summary>
    public long StateBytes => 2L * _parameters.MomentCount * sizeof(float);

    /// <summary>Global-norm clipping on the reduced gradients; returns the norm before clipping.</summary>
    public float ClipToNorm(float maxNorm)
    {
        if (!Zero) return GradClip.ClipToNorm(_ctx, _parameters.AllGrads, maxNorm);
        var mine = _parameters.AllGrads.Slice(_parameters.MomentStart, _parameters.MomentCount, _parameters.MomentCount);
        var sum = new[] { GradClip.SumOfSquares(_ctx, mine) };
        _comm.AllReduceSum(CommBuffer.Of(sum));
        float norm = (float)Math.Sqrt(sum[0]);
        float factor = maxNorm / (norm + 1e-6f);
        if (factor < 1f) GradClip.Scale(_ctx, mine, factor);
        return norm;
    }

    /// <summary>One AdamW step on this rank's block (everything without ZeRO), then ZeRO-1's all-gather of the weights.</summary>
    public void Update(AdamW adam, float lr)
    {
        adam.Update(_ctx, _parameters, lr);
        if (!Zero) return;
        var trainable = _parameters.AllWeights.Slice(0, _parameters.TrainableEnd, _parameters.TrainableEnd);
        WithHost(trainable, all =>
            _comm.AllGather(all.Slice(_parameters.MomentStart, _parameters.MomentCount), all, _counts));
        _parameters.RoundComputeWeights(); // bf16 compute: the gathered masters, rounded (no-op otherwise)
    }

    /// <summary>AdamW's m and v over the whole trainable range (gathered from their owners under ZeRO-1), for a checkpoint.</summary>
    public (float[] M, float[] V) FullMoments()
    {
        if (!Zero) return (_ctx.Download(_parameters.MomentM), _ctx.Download(_parameters.MomentV));
        var m = new float[_parameters.TrainableEnd];
        var v = new float[_parameters.TrainableEnd];
        _comm.AllGather(CommBuffer.Of(_ctx.Download(_parameters.MomentM)), CommBuffer.Of(m), _counts);
        _comm.AllGather(CommBuffer.Of(_ctx.Download(_parameters.MomentV)), CommBuffer.Of(v), _counts);
        return (m, v);
    }

    /// <summary>Sets this rank's moments from full-range m and v (a checkpoint written by any layout).</summary>
    public void LoadMoments(float[] m, float[] v)
    {
        _ctx.CopyFrom(m.AsSpan(_parameters.MomentStart, _parameters.MomentCount), _parameters.MomentM);
        _ctx.CopyFrom(v.AsSpan(_parameters.MomentStart, _parameters.MomentCount), _parameters.MomentV);
    }

    /// <summary>Runs a host collective on a tensor: directly in host memory, or staged through the host from a GPU.</summary>
    private void WithHost(DeviceTensor t, Action<CommBuffer> collective)
    {
        _ctx.Synchronize();
        if (!DeviceBuffers.NeedsStaging(_ctx, _comm))
        {
            collective(DeviceBuffers.Of(_ctx, t));
            return;
        }
        var host = _ctx.Download(t);
        collective(CommBuffer.Of(host));
        _ctx.CopyFrom(host, t);
    }
}
