namespace Qwen2VL.Runtime.Distributed;

/// <summary>
/// How <see cref="ICommunicator.ReduceScatterSum"/>, <see cref="ICommunicator.AllGather"/> and ZeRO-1 split a buffer of
/// <see cref="Total"/> elements over <see cref="Parts"/> ranks: contiguous blocks in rank order, the first
/// (Total mod Parts) blocks one element longer. Every backend uses this one rule.
/// </summary>
public readonly record struct BlockPartition(int Total, int Parts)
{
    public static BlockPartition Balanced(int total, int parts)
    {
        if (total < 0) throw new ArgumentOutOfRangeException(nameof(total));
        if (parts < 1) throw new ArgumentOutOfRangeException(nameof(parts));
        return new BlockPartition(total, parts);
    }

    public int Count(int part) => Total / Parts + (part < Total % Parts ? 1 : 0);

    public int Start(int part) => part * (Total / Parts) + Math.Min(part, Total % Parts);

    /// <summary>The largest block (the scratch a rank needs for one block).</summary>
    public int MaxCount => Total / Parts + (Total % Parts > 0 ? 1 : 0);
}
