using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// The memory plan of a module's training code with recomputation on (selective activation checkpointing). Values
/// the policy recomputes leave their dedicated (kept) slots: in <c>ForwardTrain</c> they live in workspace slots reused
/// by liveness over the forward groups; in <c>Backward</c> each is recomputed just before the first gradient rule that
/// reads it (its recomputed inputs first) into a workspace slot reused by liveness over the backward steps. The
/// workspace is shared by every runner of the module's type, so only the kept values stay allocated per layer.
/// </summary>
/// <param name="Recomputed">Per value: recomputed when the option is on.</param>
/// <param name="ForwardWork">Per value: its workspace slot in ForwardTrain (-1: none).</param>
/// <param name="BackwardWork">Per value: its workspace slot in Backward (-1: none, not read by any rule).</param>
/// <param name="RecomputeBefore">Per backward rule (in emission order): the values to recompute before it, in order.</param>
/// <param name="WorkSlots">Workspace slots (forward and backward share them: the two never overlap in time).</param>
internal sealed record TrainingPlan(bool[] Recomputed, int[] ForwardWork, int[] BackwardWork, List<int>[] RecomputeBefore, int WorkSlots)
{
    public bool Any => Recomputed.Any(r => r);
}

internal static partial class MemoryPlanner
{
    /// <param name="train">The unfused training groups with their plan (every value a dedicated slot).</param>
    /// <param name="recomputed">The values the policy recomputes (<see cref="Autodiff.Recomputable"/>).</param>
    /// <param name="ruleReads">The backward rules in emission order, each with the value ids its code reads.</param>
    public static TrainingPlan Training(FusedGraph train, bool[] recomputed, IReadOnlyList<ISet<int>> ruleReads)
    {
        var graph = train.Graph;
        var alias = train.Plan.AliasOf;
        var count = graph.Nodes.Count;

        // Forward: a recomputed value holds a workspace slot from its group until the last group that reads it.
        var lastRead = Enumerable.Repeat(-1, count).ToArray();
        for (var g = 0; g < train.Groups.Count; g++)
            foreach (var n in train.Groups[g].Nodes)
                foreach (var input in graph[n].Inputs)
                    lastRead[alias[input]] = System.Math.Max(lastRead[alias[input]], g);
        var forwardWork = Enumerable.Repeat(-1, count).ToArray();
        var forwardSlots = LinearScan(
            train.Groups.Select((group, g) => (Define: recomputed[group.Output] ? group.Output : -1, At: g)).ToList(),
            lastRead, forwardWork);

        // Backward: the steps are the rules with the recomputations scheduled before them.
        var available = new bool[count];
        var before = ruleReads.Select(_ => new List<int>()).ToArray();
        var steps = new List<(int Define, HashSet<int> Reads)>();
        void Schedule(int value, List<int> into)
        {
            var inputs = new HashSet<int>(graph[value].Inputs.Select(i => alias[i]));
            foreach (var input in inputs.OrderBy(i => i))
                if (recomputed[input] && !available[input])
                    Schedule(input, into);
            available[value] = true;
            into.Add(value);
            steps.Add((value, inputs));
        }
        for (var r = 0; r < ruleReads.Count; r++)
        {
            var reads = new HashSet<int>(ruleReads[r].Select(v => alias[v]));
            foreach (var value in reads.OrderBy(v => v))
                if (recomputed[value] && !available[value])
                    Schedule(value, before[r]);
            steps.Add((-1, reads));
        }
        var lastStep = Enumerable.Repeat(-1, count).ToArray();
        for (var s = 0; s < steps.Count; s++)
            foreach (var v in steps[s].Reads)
                lastStep[v] = System.Math.Max(lastStep[v], s);
        var backwardWork = Enumerable.Repeat(-1, count).ToArray();
        var backwardSlots = LinearScan(steps.Select((step, s) => (step.Define, At: s)).ToList(), lastStep, backwardWork);

        return new TrainingPlan(recomputed, forwardWork, backwardWork, before, System.Math.Max(forwardSlots, backwardSlots));
    }

    /// <summary>Slots for the values defined at each position, each freed after the last position that reads it.</summary>
    private static int LinearScan(List<(int Define, int At)> positions, int[] lastUse, int[] slotOf)
    {
        var free = new SortedSet<int>();
        var live = new List<int>();
        var slots = 0;
        foreach (var (define, at) in positions)
        {
            foreach (var value in live.Where(v => lastUse[v] < at).ToList())
            {
                live.Remove(value);
                free.Add(slotOf[value]);
            }
            if (define < 0)
                continue;
            int slot;
            if (free.Count > 0)
            {
                slot = free.Min;
                free.Remove(slot);
            }
            else
            {
                slot = slots++;
            }
            slotOf[define] = slot;
            live.Add(define);
        }
        return slots;
    }
}
