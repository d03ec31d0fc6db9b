using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;

namespace Qwen2VL.Generator.Emit;

/// <summary>
/// A kernel is identified by what it computes, not by where it is used: its lowered body in both forms with the
/// graph's value numbers renumbered in order of appearance (<c>v17</c>, <c>v23</c> become <c>v0</c>, <c>v1</c>), its
/// parameter list and its stem (the ops it computes). The name is the stem plus a hash of that text, so two nodes,
/// layers or modules — or inference and training — that lower to the same kernel get the same name, and the shared
/// kernel file (<see cref="SharedKernelEmitter"/>) emits it once.
/// </summary>
internal static class KernelIdentity
{
    private static readonly Regex ValueNumber = new(@"\bv(\d+)\b", RegexOptions.CultureInvariant);

    /// <summary>Renumbers the graph values a body names (<c>v17</c>) in order of first appearance across all its parts.</summary>
    public static List<List<string>> Normalise(params IEnumerable<string>[] parts)
    {
        var map = new Dictionary<string, string>();
        string Rename(Match m)
        {
            if (!map.TryGetValue(m.Value, out var renamed))
                map[m.Value] = renamed = "v" + map.Count;
            return renamed;
        }
        return parts.Select(p => p.Select(line => ValueNumber.Replace(line, Rename)).ToList()).ToList();
    }

    /// <summary>"<paramref name="stem"/>_" plus 8 hex digits of a 64-bit FNV-1a hash of <paramref name="content"/> (stable across runs and machines).</summary>
    public static string Name(string stem, string content)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(stem + "\n" + content))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return stem + "_" + (hash ^ (hash >> 32)).ToString("x16").Substring(8);
    }

    /// <summary>
    /// The stem of a use name: "G3_Scale_Silu" → "Scale_Silu"; a gradient rule's "B8_Mul_a" → "Grad_Mul" (the operand is
    /// left out: d/da and d/db of Add are the same kernel, d/da and d/db of Mul differ in their bodies and so in their hash).
    /// </summary>
    public static string Stem(string useName)
    {
        var parts = useName.Split('_');
        return useName.StartsWith("B") ? "Grad_" + parts[1] : string.Join("_", parts.Skip(1));
    }
}
