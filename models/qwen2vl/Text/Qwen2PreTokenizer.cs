using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Qwen2VL.Model.Text;

/// <summary>
/// The Qwen2 pre-tokenizer: splits text into the pieces matched by
/// <code>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</code>
/// (HF <c>Split</c>, behaviour Isolated), evaluated the way Oniguruma does on code points.
/// </summary>
/// <remarks>
/// Why not <see cref="RegexPreTokenizer"/> with a .NET <c>Regex</c>: .NET classes like <c>\p{L}</c> see UTF-16 code
/// units, so a letter or symbol outside the BMP (𝒜, 𠀀, emoji) is two surrogates that are neither letters nor
/// numbers, and <c>[^\r\n\p{L}\p{N}]?\p{L}+</c> then splits differently from Oniguruma (e.g. "😀abc" and "𝒜𝒷").
/// So the alternation is written out by hand below, alternative by alternative, with the backtracking each one
/// needs. Every code point is a letter (L), a number (N), whitespace (S) or "other"; every position is matched by
/// some alternative, so the pieces cover the text without gaps. Character classes follow Oniguruma:
/// <c>\s</c> = U+0009–U+000D, U+0085 and the Z categories; <c>\p{L}</c> = Lu Ll Lt Lm Lo; <c>\p{N}</c> = Nd Nl No.
/// The case-insensitive contractions are ASCII only (HF does not fold 'ſ' to 's'; checked against tokenizers 0.23.2).
/// </remarks>
public sealed class Qwen2PreTokenizer : PreTokenizer
{
    /// <summary>The exact pattern string of <c>tokenizer.json</c> this class implements.</summary>
    public const string Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const byte Other = 0, Letter = 1, Number = 2, Space = 3;

    /// <summary>Class of every BMP code point; supplementary ones are classified on demand.</summary>
    private static readonly byte[] BmpClass = BuildBmpClass();

    public static Qwen2PreTokenizer Instance { get; } = new();

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text);

    /// <summary>The pieces of <paramref name="text"/> as (offset, length) in UTF-16 units, in order.</summary>
    public static List<(int Offset, int Length)> Split(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int, int)>();
        var i = 0;
        while (i < text.Length)
        {
            var end = MatchAt(text, i);
            pieces.Add((i, end - i));
            i = end;
        }
        return pieces;
    }

    /// <summary>End of the regex match that starts at <paramref name="i"/>: the first alternative that matches wins.</summary>
    private static int MatchAt(ReadOnlySpan<char> s, int i)
    {
        var (c0, n0) = ClassAt(s, i);

        // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (s[i] == '\'' && i + 1 < s.Length)
        {
            var a = AsciiLower(s[i + 1]);
            if (a is 's' or 't' or 'm' or 'd') return i + 2;
            if (i + 2 < s.Length)
            {
                var b = AsciiLower(s[i + 2]);
                if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
            }
        }

        // 2. [^\r\n\p{L}\p{N}]?\p{L}+  (the optional prefix is any single non-letter, non-number except CR/LF)
        if (c0 == Letter) return SkipWhile(s, i, Letter);
        if (c0 != Number && !IsCrLf(s[i]) && i + n0 < s.Length && ClassAt(s, i + n0).Class == Letter)
            return SkipWhile(s, i + n0, Letter);

        // 3. \p{N}: one numeric code point
        if (c0 == Number) return i + n0;

        // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var start = s[i] == ' ' && i + 1 < s.Length && ClassAt(s, i + 1).Class == Other ? i + 1 : i;
        if (ClassAt(s, start).Class == Other)
        {
            var j = SkipWhile(s, start, Other);
            while (j < s.Length && IsCrLf(s[j])) j++;
            return j;
        }

        // Here s[i] starts a whitespace run [i, runEnd).
        var runEnd = SkipWhile(s, i, Space);

        // 5. \s*[\r\n]+  : greedy \s* backs off to the last CR/LF of the run, which [\r\n]+ then takes.
        for (var k = runEnd - 1; k >= i; k--)
            if (IsCrLf(s[k])) return k + 1;

        // 6. \s+(?!\S)   : at the end of text the whole run; before a non-space, the run less its last code point.
        if (runEnd == s.Length) return runEnd;
        var lastStart = PreviousCodePointStart(s, runEnd);
        if (lastStart > i) return lastStart;

        // 7. \s+         : a single whitespace code point before a non-space.
        return runEnd;
    }

    private static int SkipWhile(ReadOnlySpan<char> s, int i, byte wanted)
    {
        while (i < s.Length)
        {
            var (c, n) = ClassAt(s, i);
            if (c != wanted) break;
            i += n;
        }
        return i;
    }

    /// <summary>Class and UTF-16 length of the code point at <paramref name="i"/>; a lone surrogate counts as one "other".</summary>
    private static (byte Class, int Length) ClassAt(ReadOnlySpan<char> s, int i)
    {
        var c = s[i];
        if (!char.IsHighSurrogate(c) || i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1]))
            return (BmpClass[c], 1);
        var rune = new Rune(c, s[i + 1]);
        return (Classify(Rune.GetUnicodeCategory(rune)), 2);
    }

    private static int PreviousCodePointStart(ReadOnlySpan<char> s, int end) =>
        end >= 2 && char.IsLowSurrogate(s[end - 1]) && char.IsHighSurrogate(s[end - 2]) ? end - 2 : end - 1;

    private static bool IsCrLf(char c) => c == '\r' || c == '\n';

    private static char AsciiLower(char c) => c is >= 'A' and <= 'Z' ? (char)(c + 32) : c;

    private static byte Classify(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
        UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => Space,
        _ => Other,
    };

    private static byte[] BuildBmpClass()
    {
        var table = new byte[65536];
        for (var c = 0; c < table.Length; c++)
        {
            // Surrogate halves are classified as pairs in ClassAt; alone they are "other".
            table[c] = (c >= 0x09 && c <= 0x0D) || c == 0x85
                ? Space
                : Classify(CharUnicodeInfo.GetUnicodeCategory((char)c));
        }
        return table;
    }
}
