namespace Qwen2VL.Model.Text;

/// <summary>
/// Finds added (special) tokens such as <c>&lt;|im_start|&gt;</c> in raw text, before normalization, the way HF
/// tokenizers does with <c>split_special_tokens=false</c>: scanning left to right, at the first position where some
/// token matches, the longest token there wins. The text between matches is ordinary text for BPE.
/// </summary>
public sealed class AddedTokenMatcher
{
    /// <summary>Candidate tokens grouped by first character, longest first.</summary>
    private readonly Dictionary<char, (string Content, int Id)[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<KeyValuePair<string, int>> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Key.Length > 0)
            .GroupBy(t => t.Key[0])
            .ToDictionary(
                g => g.Key,
                g => g.OrderByDescending(t => t.Key.Length).ThenBy(t => t.Key, StringComparer.Ordinal)
                      .Select(t => (t.Key, t.Value)).ToArray());
    }

    /// <summary>
    /// Splits <paramref name="text"/> into segments: (start, length, id) where id is the added token's id, or -1
    /// for a run of ordinary text.
    /// </summary>
    public List<(int Start, int Length, int Id)> Split(ReadOnlySpan<char> text)
    {
        var segments = new List<(int, int, int)>();
        var plainStart = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (!_byFirstChar.TryGetValue(text[i], out var candidates)) continue;
            foreach (var (content, id) in candidates)
            {
                if (!text[i..].StartsWith(content, StringComparison.Ordinal)) continue;
                if (i > plainStart) segments.Add((plainStart, i - plainStart, -1));
                segments.Add((i, content.Length, id));
                i += content.Length - 1;
                plainStart = i + 1;
                break;
            }
        }
        if (plainStart < text.Length) segments.Add((plainStart, text.Length - plainStart, -1));
        return segments;
    }
}
