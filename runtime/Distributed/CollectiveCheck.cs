using System.Security.Cryptography;

namespace Qwen2VL.Runtime.Distributed;

/// <summary>One collective's outcome on this rank: whether it gave the expected values, and a digest of its bits.</summary>
public sealed record CollectiveCheckResult(string Name, bool Passed, string Digest, string Detail);

/// <summary>
/// Runs every collective of <see cref="ICommunicator"/> on a group and checks each result against what this rank
/// computes on its own (the rank-order fold of values every rank can generate). Values are chosen so that the order
/// of the sum changes the bits (large and small magnitudes, mixed signs), and block counts that do not divide the
/// group. The digests of the results let two backends be compared bit for bit: the threads and MPI backends give
/// the same digests. Used by the tests and by the <c>collectives</c> command (run under <c>mpirun</c>).
/// </summary>
public static class CollectiveCheck
{
    public static List<CollectiveCheckResult> Run(ICommunicator comm)
    {
        var results = new List<CollectiveCheckResult>();
        int rank = comm.Rank, size = comm.Size;

        foreach (int n in new[] { 1003, 1 })
        {
            var data = Values(rank, n);
            comm.AllReduceSum(CommBuffer.Of(data));
            results.Add(Compare($"AllReduceSum f32[{n}]", data, FoldF32(size, n, 0, n)));
        }
        {
            var data = Enumerable.Range(0, 7).Select(i => (double)Value(rank, i) * 1e-3 + rank * 1e12).ToArray();
            comm.AllReduceSum(CommBuffer.Of(data));
            var expected = new double[7];
            for (int i = 0; i < 7; i++)
            {
                double acc = (double)Value(0, i) * 1e-3;
                for (int r = 1; r < size; r++) acc += (double)Value(r, i) * 1e-3 + r * 1e12;
                expected[i] = acc;
            }
            results.Add(Compare("AllReduceSum f64[7]", data, expected));
        }
        foreach (var dtype in new[] { CommDType.BF16, CommDType.F16 })
        {
            const int n = 33;
            ushort[] bits = Values(rank, n).Select(v => ToBits(dtype, v * 1e-3f)).ToArray();
            comm.AllReduceSum(CommBuffer.Of(bits, dtype));
            var expected = new ushort[n];
            for (int i = 0; i < n; i++)
            {
                float acc = FromBits(dtype, ToBits(dtype, Value(0, i) * 1e-3f));
                for (int r = 1; r < size; r++) acc += FromBits(dtype, ToBits(dtype, Value(r, i) * 1e-3f));
                expected[i] = ToBits(dtype, acc);
            }
            results.Add(Compare($"AllReduceSum {dtype.ToString().ToLowerInvariant()}[{n}]", bits.Select(b => (float)b).ToArray(), expected.Select(b => (float)b).ToArray()));
        }

        foreach (var (label, counts) in Layouts(comm, 1001))
        {
            int total = counts.Sum(), start = counts.Take(rank).Sum();
            var send = Values(rank, total);
            var mine = new float[counts[rank]];
            comm.ReduceScatterSum(CommBuffer.Of(send), CommBuffer.Of(mine), counts);
            results.Add(Compare($"ReduceScatterSum f32[{total}] {label}", mine, FoldF32(size, total, start, counts[rank])));

            var gathered = new float[total];
            var block = Values(rank, total).AsSpan(start, counts[rank]).ToArray();
            comm.AllGather(CommBuffer.Of(block), CommBuffer.Of(gathered), counts);
            var expectedGather = new float[total];
            for (int r = 0, at = 0; r < size; at += counts[r], r++)
                Array.Copy(Values(r, total), at, expectedGather, at, counts[r]);
            results.Add(Compare($"AllGather f32[{total}] {label}", gathered, expectedGather));

            // In place: this rank's block already sits in the receive buffer.
            var inPlace = new float[total];
            Array.Copy(Values(rank, total), start, inPlace, start, counts[rank]);
            comm.AllGather(CommBuffer.Of(inPlace, start, counts[rank]), CommBuffer.Of(inPlace), counts);
            results.Add(Compare($"AllGather in place f32[{total}] {label}", inPlace, expectedGather));
        }

        {
            int root = size - 1;
            var data = rank == root ? Values(root, 257) : new float[257];
            comm.Broadcast(CommBuffer.Of(data), root);
            results.Add(Compare($"Broadcast f32[257] from {root}", data, Values(root, 257)));
        }

        {
            // A ring with SendReceive, and the same ring with ordered blocking Send / Receive (even ranks send first).
            int next = (rank + 1) % size, previous = (rank + size - 1) % size;
            var received = new float[65];
            comm.SendReceive(CommBuffer.Of(Values(rank, 65)), next, CommBuffer.Of(received), previous, 7);
            results.Add(Compare("SendReceive ring f32[65]", received, Values(previous, 65)));
            if (size > 1)
            {
                var got = new float[65];
                if (rank % 2 == 0)
                {
                    comm.Send(CommBuffer.Of(Values(rank + 100, 65)), next, 8);
                    comm.Receive(CommBuffer.Of(got), previous, 8);
                }
                else
                {
                    comm.Receive(CommBuffer.Of(got), previous, 8);
                    comm.Send(CommBuffer.Of(Values(rank + 100, 65)), next, 8);
                }
                results.Add(Compare("Send/Receive ring f32[65]", got, Values(previous + 100, 65)));
            }
        }

        comm.Barrier();
        results.Add(new CollectiveCheckResult("Barrier", true, "-", ""));

        {
            // Split by parity, ranked in reverse: the group's ranks are the old ranks of one parity, highest first.
            using var half = comm.Split(rank % 2, -rank)!;
            int[] members = Enumerable.Range(0, size).Where(r => r % 2 == rank % 2).OrderByDescending(r => r).ToArray();
            bool shape = half.Size == members.Length && members[half.Rank] == rank;
            var data = Values(rank, 31);
            half.AllReduceSum(CommBuffer.Of(data));
            var expected = new float[31];
            for (int i = 0; i < 31; i++)
            {
                float acc = Value(members[0], i);
                for (int k = 1; k < members.Length; k++) acc += Value(members[k], i);
                expected[i] = acc;
            }
            var check = Compare($"Split(parity) AllReduceSum f32[31]", data, expected);
            results.Add(shape ? check : check with { Passed = false, Detail = $"rank {half.Rank} of {half.Size} in the split group, expected {Array.IndexOf(members, rank)} of {members.Length}" });
        }
        {
            using var none = comm.Split(rank == 0 ? -1 : 0, rank);
            results.Add(new CollectiveCheckResult("Split(no color)", rank == 0 ? none is null : none?.Size == size - 1, "-", ""));
        }
        {
            using var dup = comm.Duplicate();
            var data = Values(rank, 17);
            dup.AllReduceSum(CommBuffer.Of(data));
            results.Add(Compare("Duplicate AllReduceSum f32[17]", data, FoldF32(size, 17, 0, 17)) with { });
        }
        return results;
    }

    /// <summary>Rank r's element i: magnitudes from 1e-3 to 1e5 and both signs, so the sum's order shows in its bits.</summary>
    public static float Value(int rank, int i)
    {
        uint h = (uint)(rank * 7919 + i * 104729 + 12345);
        h ^= h >> 13; h *= 0x5bd1e995; h ^= h >> 15;
        float mantissa = (h & 0xffff) / 65536f + 0.5f;
        float scale = MathF.Pow(10f, (int)(h >> 16) % 9 - 3);
        return ((h >> 31) != 0 ? -1f : 1f) * mantissa * scale;
    }

    public static float[] Values(int rank, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = Value(rank, i);
        return v;
    }

    /// <summary>Elements [start, start+count) of the left fold over ranks 0..size−1 in float32.</summary>
    private static float[] FoldF32(int size, int n, int start, int count)
    {
        var acc = new float[count];
        for (int i = 0; i < count; i++)
        {
            float s = Value(0, start + i);
            for (int r = 1; r < size; r++) s += Value(r, start + i);
            acc[i] = s;
        }
        return acc;
    }

    /// <summary>Balanced blocks, and uneven ones with an empty block (rank 0's) when the group has more than one rank.</summary>
    private static IEnumerable<(string Label, int[] Counts)> Layouts(ICommunicator comm, int total)
    {
        yield return ("balanced", comm.Blocks(total));
        if (comm.Size > 1)
            yield return ("uneven", Enumerable.Range(0, comm.Size).Select(r => r == 0 ? 0 : 3 * r + 1).ToArray());
    }

    private static CollectiveCheckResult Compare(string name, float[] actual, float[] expected)
    {
        int bad = Enumerable.Range(0, expected.Length).FirstOrDefault(i => BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(expected[i]), -1);
        return new CollectiveCheckResult(name, bad < 0, Digest(actual.SelectMany(BitConverter.GetBytes).ToArray()),
            bad < 0 ? "" : $"element {bad}: {actual[bad]:R}, expected {expected[bad]:R}");
    }

    private static CollectiveCheckResult Compare(string name, double[] actual, double[] expected)
    {
        int bad = Enumerable.Range(0, expected.Length).FirstOrDefault(i => BitConverter.DoubleToInt64Bits(actual[i]) != BitConverter.DoubleToInt64Bits(expected[i]), -1);
        return new CollectiveCheckResult(name, bad < 0, Digest(actual.SelectMany(BitConverter.GetBytes).ToArray()),
            bad < 0 ? "" : $"element {bad}: {actual[bad]:R}, expected {expected[bad]:R}");
    }

    private static string Digest(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes))[..12].ToLowerInvariant();

    private static ushort ToBits(CommDType dtype, float v) =>
        dtype == CommDType.BF16 ? RankOrderSum.FloatToBF16(v) : BitConverter.HalfToUInt16Bits((Half)v);

    private static float FromBits(CommDType dtype, ushort bits) =>
        dtype == CommDType.BF16 ? RankOrderSum.BF16ToFloat(bits) : (float)BitConverter.UInt16BitsToHalf(bits);
}
