using System.Text;
using System.Text.RegularExpressions;

namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// Turns ILGPU's PTX into the reproducible text written to disk. ILGPU names parameters, labels and helper functions
/// after process-wide IR node ids (<c>_index_82946</c>, <c>L_829440</c>), which depend on everything compiled before
/// in the process. Those identifiers are renumbered in order of first appearance (<c>_index_0</c>, <c>L_7</c>): a
/// consistent renaming of local names, so the program is unchanged. The <c>.target</c> line is set to the requested
/// architecture (ILGPU writes the smaller of the device's and the newest one any of its capabilities needs: sm_80).
/// </summary>
public static partial class PtxText
{
    /// <summary>Mnemonics that exist only on the architecture-specific Hopper target sm_90a (PTX ISA: wgmma, setmaxnreg).</summary>
    public static IReadOnlyList<string> HopperOnlyInstructions { get; } = ["wgmma.", "setmaxnreg."];

    public static string Canonicalize(string ptx, PtxTarget target, string entryPoint)
    {
        var text = ptx.ReplaceLineEndings("\n");
        var match = TargetLine().Match(text);
        if (!match.Success) throw new InvalidOperationException($"ILGPU's PTX for {entryPoint} has no .target line");
        int bodyStart = text.IndexOf('\n', match.Index) + 1;
        var header = text[..match.Index] + ".target " + TargetName(text, target);
        var body = RenumberIds(text[bodyStart..], entryPoint);
        var result = header + "\n" + body;
        if (EntryPoints(result).SingleOrDefault() != entryPoint)
            throw new InvalidOperationException($"ILGPU's PTX does not declare exactly the entry point {entryPoint}");
        return result;
    }

    /// <summary><c>sm_90a</c> when the code uses an sm_90a-only instruction, else the architecture itself.</summary>
    public static string TargetName(string ptx, PtxTarget target) =>
        target.Name == "sm_90" && UsesHopperOnlyInstructions(ptx) ? "sm_90a" : target.Name;

    public static bool UsesHopperOnlyInstructions(string ptx) =>
        ptx.Split('\n').Any(line => HopperOnlyInstructions.Any(mnemonic => Instruction(line).StartsWith(mnemonic, StringComparison.Ordinal)));

    /// <summary>The names declared with <c>.entry</c>, in order.</summary>
    public static IReadOnlyList<string> EntryPoints(string ptx) =>
        EntryDeclaration().Matches(ptx).Select(m => m.Groups[1].Value).ToArray();

    /// <summary>The <c>.target</c> of a PTX text (<c>sm_80</c>).</summary>
    public static string? Target(string ptx)
    {
        var match = TargetLine().Match(ptx);
        return match.Success ? match.Groups[1].Value : null;
    }

    /// <summary>The bytes of static shared memory a kernel declares: the sum of its <c>.shared … .b8 name[N]</c> arrays.</summary>
    public static int StaticSharedBytes(string ptx) =>
        SharedDeclaration().Matches(ptx).Sum(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

    private static string RenumberIds(string body, string entryPoint)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        return IdSuffixedName().Replace(body, m =>
        {
            var name = m.Value;
            if (name == entryPoint) return name;
            if (!names.TryGetValue(name, out var renamed))
            {
                renamed = m.Groups["prefix"].Value + names.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                names.Add(name, renamed);
            }
            return renamed;
        });
    }

    /// <summary>The instruction of a PTX line without its guard predicate (<c>@%p1 bra L_3;</c> → <c>bra L_3;</c>).</summary>
    private static string Instruction(string line)
    {
        var trimmed = line.TrimStart();
        if (trimmed.StartsWith('@'))
        {
            int space = trimmed.IndexOfAny([' ', '\t']);
            trimmed = space < 0 ? "" : trimmed[(space + 1)..].TrimStart();
        }
        return trimmed;
    }

    [GeneratedRegex(@"^\.target\s+(\S+?)\s*$", RegexOptions.Multiline)]
    private static partial Regex TargetLine();

    [GeneratedRegex(@"^\s*\.shared\s+(?:\.align\s+\d+\s+)?\.b8\s+[\w$]+\[(\d+)\];", RegexOptions.Multiline)]
    private static partial Regex SharedDeclaration();

    [GeneratedRegex(@"\.entry\s+([A-Za-z_$][\w$]*)\s*\(")]
    private static partial Regex EntryDeclaration();

    // An identifier (not a register %r1, not a directive or type suffix .s32) that ends in "_<digits>": ILGPU's
    // "<name>_<node id>" parameters and functions, "L_<method id><n>" labels, "retval_<id>"; and "__strconst<id>".
    [GeneratedRegex(@"(?<![\w$%.])(?<prefix>__strconst|[A-Za-z_$][\w$]*_)\d+(?![\w$])")]
    private static partial Regex IdSuffixedName();
}
