using System.Text;
using Microsoft.ML.Tokenizers;

namespace Qwen2VL.Model.Text;

/// <summary>The <c>"normalizer": {"type": "NFC"}</c> step: Unicode canonical composition (é = e + U+0301 → U+00E9).</summary>
/// <remarks>
/// Microsoft.ML.Tokenizers 2.0.1 ships no NFC normalizer, hence this small subclass. A lone UTF-16 surrogate (which a
/// Rust/HF string cannot hold and <see cref="string.Normalize()"/> rejects) becomes U+FFFD, the same bytes UTF-8
/// encoding would give it.
/// </remarks>
public sealed class NfcNormalizer : Normalizer
{
    public static NfcNormalizer Instance { get; } = new();

    public override string Normalize(string original) => NeedsWork(original) ? Compose(original) : original;

    public override string Normalize(ReadOnlySpan<char> original) =>
        NeedsWork(original) ? Compose(original.ToString()) : original.ToString();

    /// <summary>Code points below U+0300 never change under NFC nor combine with what precedes them.</summary>
    private static bool NeedsWork(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
            if (c >= '\u0300') return true;
        return false;
    }

    private static string Compose(string text)
    {
        if (HasLoneSurrogate(text))
            text = ReplaceLoneSurrogates(text);
        return text.Normalize(NormalizationForm.FormC);
    }

    private static bool HasLoneSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(text[i])) return true;
        }
        return false;
    }

    private static string ReplaceLoneSurrogates(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(text[i]).Append(text[i + 1]);
                i++;
            }
            else sb.Append(char.IsSurrogate(text[i]) ? '\uFFFD' : text[i]);
        }
        return sb.ToString();
    }
}
