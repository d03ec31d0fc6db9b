using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// Pass 3: liveness-based buffer reuse. Every value a kernel materialises gets an arena slot; a slot is reused
/// once the value in it has been read for the last time. Views (reshape) alias their source. The module's
/// output gets a slot of its own so it survives until the next call. Slot capacities are the largest size
/// assigned, computed by the runner when the dims are bound, so a steady-state Forward allocates nothing.
/// </summary>
internal static partial class MemoryPlanner
{
    public static MemoryPlan Run(Graph graph, IReadOnlyList<KernelGroup> groups, bool reuse = true)
    {
        var count = graph.Nodes.Count;
        var alias = Enumerable.Range(0, count).ToArray();
        var groupIndexOf = new int[count];
        for (var g = 0; g < groups.Count; g++)
            foreach (var n in groups[g].Nodes)
                groupIndexOf[n] = g;

        // Views alias the storage of their source (transitively).
        foreach (var group in groups.Where(g => g.Kind == GroupKind.View))
            alias[group.Output] = alias[graph[group.Output].Inputs[0]];

        // Last group that reads each storage root.
        var lastUse = Enumerable.Repeat(-1, count).ToArray();
        for (var g = 0; g < groups.Count; g++)
            foreach (var n in groups[g].Nodes)
                foreach (var input in graph[n].Inputs)
                    lastUse[alias[input]] = System.Math.Max(lastUse[alias[input]], g);
        var output = graph.Output >= 0 ? alias[graph.Output] : -1;

        var slotOf = Enumerable.Repeat(-1, count).ToArray();
        var free = new SortedSet<int>();
        var live = new List<int>(); // roots currently holding a slot
        var slots = 0;
        for (var g = 0; g < groups.Count; g++)
        {
            foreach (var root in live.Where(r => lastUse[r] < g).ToList())
            {
                live.Remove(root);
                if (root != output)
                    free.Add(slotOf[root]);
            }
            var group = groups[g];
            if (group.Kind is GroupKind.View or GroupKind.Call or GroupKind.Loop)
                continue; // views alias; submodule outputs live in the child's arena
            foreach (var value in new[] { group.Residual, group.Output }.Where(v => v >= 0))
            {
                int slot;
                if (reuse && value != output && free.Count > 0)
                {
                    slot = free.Min;
                    free.Remove(slot);
                }
                else
                {
                    slot = slots++;
                }
                slotOf[value] = slot;
                live.Add(value);
            }
        }
        return new MemoryPlan(slots, slotOf.ToEquatableArray(), alias.ToEquatableArray());
    }
}
