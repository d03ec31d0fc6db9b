using Qwen2VL.Model.Training.Data;
using Xunit;

namespace Qwen2VL.Tests.Training.Data;

public sealed class DataLoaderTests
{
    private static List<int[]> Take(DataLoader loader, int batches) =>
        Enumerable.Range(0, batches).Select(_ => loader.NextBatch()).ToList();

    [Fact]
    public void SameSeed_SameBatches_DifferentSeed_DifferentOrder()
    {
        var a = Take(new DataLoader(10, 3, seed: 7), 12);
        var b = Take(new DataLoader(10, 3, seed: 7), 12);
        var c = Take(new DataLoader(10, 3, seed: 8), 12);

        Assert.Equal(a, b);
        Assert.NotEqual(a.SelectMany(x => x), c.SelectMany(x => x));
    }

    [Fact]
    public void EachEpoch_IsAPermutation_EpochsDiffer_LastBatchShorter()
    {
        var loader = new DataLoader(10, 3, seed: 1);
        var epoch0 = Take(loader, 4);
        Assert.Equal([3, 3, 3, 1], epoch0.Select(x => x.Length));
        Assert.Equal(new LoaderPosition(0, 10), loader.Position);
        var epoch1 = Take(loader, 4);
        Assert.Equal(new LoaderPosition(1, 10), loader.Position);

        Assert.Equal(Enumerable.Range(0, 10), epoch0.SelectMany(x => x).Order());
        Assert.Equal(Enumerable.Range(0, 10), epoch1.SelectMany(x => x).Order());
        Assert.NotEqual(epoch0.SelectMany(x => x), epoch1.SelectMany(x => x));
        Assert.Equal(loader.Order(1), epoch1.SelectMany(x => x));
        Assert.NotEqual(Enumerable.Range(0, 10), loader.Order(0));
    }

    [Fact]
    public void DropLast_SkipsTheShortBatch()
    {
        var loader = new DataLoader(10, 3, seed: 1, dropLast: true);
        var batches = Take(loader, 4);

        Assert.All(batches, b => Assert.Equal(3, b.Length));
        Assert.Equal(new LoaderPosition(1, 3), loader.Position);
        Assert.Equal(loader.Order(1).Take(3), batches[3]);
        Assert.Equal(3, loader.BatchesPerEpoch);
    }

    [Fact]
    public void Restore_ContinuesExactlyWhereTheSavedPositionWas()
    {
        var reference = Take(new DataLoader(11, 4, seed: 42), 9);
        var first = new DataLoader(11, 4, seed: 42);
        Take(first, 5);
        var saved = first.Position;

        var resumed = new DataLoader(11, 4, seed: 42);
        resumed.Restore(saved);

        Assert.Equal(reference.Skip(5), Take(resumed, 4));
    }

    [Fact]
    public void BadArguments_Throw()
    {
        Assert.Throws<TrainingDataException>(() => new DataLoader(0, 1, 1));
        Assert.Throws<TrainingDataException>(() => new DataLoader(5, 0, 1));
        Assert.Throws<TrainingDataException>(() => new DataLoader(5, 6, 1, dropLast: true));
        Assert.Throws<TrainingDataException>(() => new DataLoader(5, 2, 1).Restore(new LoaderPosition(0, 6)));
    }
}
