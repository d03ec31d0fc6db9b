using System.Collections.Generic;
using System.Linq;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// An op's shape rule parsed from its [Op] attribute: <c>"x:[*B,K]; w:[N,K]; b?:[N] -> [*B,N]"</c>.
/// <c>*B</c> matches any run of leading dims; <c>..S</c> matches any suffix of the run bound to S
/// (broadcasting); <c>:i64</c> marks integer tensors.
/// </summary>
internal sealed class ShapeRule
{
    public List<ArgRule> Args { get; } = new();
    public List<DimPattern> Result { get; } = new();

    public static ShapeRule? Parse(string text, out string? error)
    {
        error = null;
        var parts = text.Split(new[] { "->" }, System.StringSplitOptions.None);
        if (parts.Length != 2)
        {
            error = "expected 'args -> [result]'";
            return null;
        }
        var rule = new ShapeRule();
        foreach (var arg in parts[0].Split(';').Select(a => a.Trim()).Where(a => a.Length > 0))
        {
            var colon = arg.IndexOf(':');
            if (colon < 0)
            {
                error = $"argument '{arg}' has no ':[dims]'";
                return null;
            }
            var name = arg.Substring(0, colon).Trim();
            var optional = name.EndsWith("?");
            var rest = arg.Substring(colon + 1).Trim();
            var isInt = rest.EndsWith(":i64");
            if (isInt)
                rest = rest.Substring(0, rest.Length - 4).Trim();
            var dims = ParseDims(rest, out error);
            if (dims is null)
                return null;
            rule.Args.Add(new ArgRule(optional ? name.TrimEnd('?') : name, optional, isInt, dims));
        }
        var result = ParseDims(parts[1].Trim(), out error);
        if (result is null)
            return null;
        rule.Result.AddRange(result);
        return rule;
    }

    private static List<DimPattern>? ParseDims(string text, out string? error)
    {
        error = null;
        if (!text.StartsWith("[") || !text.EndsWith("]"))
        {
            error = $"'{text}' is not a [dims] list";
            return null;
        }
        var list = new List<DimPattern>();
        foreach (var raw in text.Substring(1, text.Length - 2).Split(',').Select(d => d.Trim()).Where(d => d.Length > 0))
        {
            if (raw.StartsWith("*"))
                list.Add(new DimPattern(DimPatternKind.Star, raw.Substring(1), 0));
            else if (raw.StartsWith(".."))
                list.Add(new DimPattern(DimPatternKind.Suffix, raw.Substring(2), 0));
            else if (int.TryParse(raw, out var value))
                list.Add(new DimPattern(DimPatternKind.Const, raw, value));
            else
                list.Add(new DimPattern(DimPatternKind.Var, raw, 0));
        }
        return list;
    }
}

internal sealed record ArgRule(string Name, bool Optional, bool IsInt, List<DimPattern> Dims);

internal enum DimPatternKind { Var, Star, Suffix, Const }

internal sealed record DimPattern(DimPatternKind Kind, string Name, int Value);
