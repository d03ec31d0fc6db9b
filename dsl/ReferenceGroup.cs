namespace Qwen2VL.Dsl;

/// <summary>
/// The tensor-parallel group the float64 references of the collective ops (<see cref="Ops.AllReduce"/> …) run in: one
/// thread per rank, each running the same reference code on its shard. Outside <see cref="Run{T}"/> a thread is a
/// group of one (degree 1), where every collective is the identity. Sums fold over ranks in rank order, as the
/// runtime's collectives do, so a result does not depend on thread timing.
/// </summary>
public sealed class ReferenceGroup
{
    [ThreadStatic] private static ReferenceGroup? _group;
    [ThreadStatic] private static int _rank;

    private readonly Barrier _barrier;
    private readonly Tensor?[] _posted;

    private ReferenceGroup(int size)
    {
        Size = size;
        _barrier = new Barrier(size);
        _posted = new Tensor?[size];
    }

    /// <summary>The number of ranks in the group.</summary>
    public int Size { get; }

    /// <summary>The calling thread's group size (1 outside a group).</summary>
    public static int CurrentSize => _group?.Size ?? 1;

    /// <summary>The calling thread's rank (0 outside a group).</summary>
    public static int CurrentRank => _group is null ? 0 : _rank;

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="size"/> ranks, one thread each, and returns each rank's result in
    /// rank order. A rank that throws leaves the group (the others do not wait for it) and its exception is rethrown.
    /// </summary>
    public static T[] Run<T>(int size, Func<int, T> body)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "a group has at least one rank");
        var group = new ReferenceGroup(size);
        var results = new T[size];
        var errors = new Exception?[size];
        var threads = Enumerable.Range(0, size).Select(rank => new Thread(() =>
        {
            _group = group;
            _rank = rank;
            try { results[rank] = body(rank); }
            catch (Exception e) { errors[rank] = e; group._barrier.RemoveParticipant(); }
            finally { _group = null; }
        }, maxStackSize: 16 << 20)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (errors.FirstOrDefault(e => e is not null) is { } error)
            throw new AggregateException("a rank of the reference group failed: " + error.Message, error);
        return results;
    }

    /// <summary>Every rank's <paramref name="x"/>, in rank order (this rank's own included).</summary>
    internal static Tensor[] Exchange(string op, Tensor x)
    {
        var group = _group;
        if (group is null)
            return [x];
        group._posted[_rank] = x;
        group.Wait(op);
        var all = group._posted.Select(t => t!).ToArray();
        if (all.Any(t => !t.Shape.SequenceEqual(x.Shape)))
            throw OpChecks.Error(op, "ranks hold different shapes: " + string.Join(", ", all.Select(OpChecks.S)));
        group.Wait(op); // no rank posts its next value before every rank has read this one
        return all;
    }

    private void Wait(string op)
    {
        if (!_barrier.SignalAndWait(TimeSpan.FromSeconds(60)))
            throw OpChecks.Error(op, "the other ranks of the reference group did not arrive within 60 s");
    }
}
