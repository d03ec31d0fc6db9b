namespace Qwen2VL.Model.Training.Data;

/// <summary>Where a <see cref="DataLoader"/> stands: the epoch, and how many samples of that epoch's order were handed out.</summary>
public readonly record struct LoaderPosition(int Epoch, int Index);

/// <summary>
/// Hands out batches of sample indices: each epoch visits every sample once in an order shuffled by a generator
/// seeded from (seed, epoch) alone, so the order of any epoch can be recomputed without replaying the ones before;
/// that makes <see cref="Position"/> a complete resume point. The last batch of an epoch is shorter when the
/// sample count is not a multiple of the batch size (or skipped with dropLast).
/// </summary>
public sealed class DataLoader
{
    readonly ulong _seed;
    int[]? _order;
    int _orderEpoch = -1;

    public int SampleCount { get; }

    public int BatchSize { get; }

    public bool DropLast { get; }

    public LoaderPosition Position { get; private set; }

    public DataLoader(int sampleCount, int batchSize, ulong seed, bool dropLast = false)
    {
        if (sampleCount < 1) throw new TrainingDataException($"the data loader needs at least one sample, got {sampleCount}");
        if (batchSize < 1) throw new TrainingDataException($"batch size must be at least 1, got {batchSize}");
        if (dropLast && batchSize > sampleCount)
            throw new TrainingDataException($"batch size {batchSize} is above the {sampleCount} samples, so dropLast leaves no batch");
        SampleCount = sampleCount;
        BatchSize = batchSize;
        DropLast = dropLast;
        _seed = seed;
    }

    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => DropLast ? SampleCount / BatchSize : (SampleCount + BatchSize - 1) / BatchSize;

    /// <summary>The sample order of an epoch: a permutation of 0..SampleCount-1.</summary>
    public IReadOnlyList<int> Order(int epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "epoch must be non-negative");
        var order = Enumerable.Range(0, SampleCount).ToArray();
        // Mix the epoch into the seed through one SplitMix64 step so neighbouring (seed, epoch) pairs diverge at once.
        var rng = new SplitMix64(new SplitMix64(_seed ^ ((ulong)epoch * 0xD1B54A32D192ED03UL)).NextULong());
        rng.Shuffle(order);
        return order;
    }

    /// <summary>The next batch of sample indices; moves to the next epoch when this one is used up.</summary>
    public int[] NextBatch()
    {
        var (epoch, index) = Position;
        int remaining = SampleCount - index;
        if (remaining <= 0 || (DropLast && remaining < BatchSize))
        {
            epoch++;
            index = 0;
            remaining = SampleCount;
        }
        if (_orderEpoch != epoch)
        {
            _order = (int[])Order(epoch);
            _orderEpoch = epoch;
        }
        int count = Math.Min(BatchSize, remaining);
        var batch = _order!.AsSpan(index, count).ToArray();
        Position = new LoaderPosition(epoch, index + count);
        return batch;
    }

    /// <summary>Continues from a saved <see cref="Position"/>: the next batch is the one that would have followed it.</summary>
    public void Restore(LoaderPosition position)
    {
        if (position.Epoch < 0 || position.Index < 0 || position.Index > SampleCount)
            throw new TrainingDataException(
                $"loader position (epoch {position.Epoch}, index {position.Index}) is outside this data set of {SampleCount} samples");
        Position = position;
    }
}
