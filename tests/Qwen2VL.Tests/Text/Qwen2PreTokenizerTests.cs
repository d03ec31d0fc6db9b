using Qwen2VL.Model.Text;
using Xunit;

namespace Qwen2VL.Tests.Text;

/// <summary>Splits of the Qwen2 regex; expected pieces from HF tokenizers 0.23.2's pre_tokenize_str on the real tokenizer.</summary>
public sealed class Qwen2PreTokenizerTests
{
    [Theory]
    [InlineData("😀abc", new[] { "😀abc" })]                                  // emoji (outside the BMP) as the optional prefix
    [InlineData("  abc", new[] { " ", " abc" })]                              // \s+(?!\S) leaves the last space to the word
    [InlineData("a\n\n b", new[] { "a", "\n\n", " b" })]                      // \s*[\r\n]+ ends at the last newline
    [InlineData("x  \t\n  y", new[] { "x", "  \t\n", " ", " y" })]
    [InlineData("I'M here", new[] { "I", "'M", " here" })]                    // case-insensitive contractions
    [InlineData("'Re'LL", new[] { "'Re", "'LL" })]
    [InlineData("abc123", new[] { "abc", "1", "2", "3" })]                    // one digit per piece
    [InlineData(" !!!\n\nx", new[] { " !!!\n\n", "x" })]                      // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    [InlineData("𝒜𝒷 c", new[] { "𝒜𝒷", " c" })]                              // letters outside the BMP
    [InlineData("\u00a0\u00a0x", new[] { "\u00a0", "\u00a0x" })]              // no-break space is \s
    [InlineData("a \u3000b", new[] { "a", " ", "\u3000b" })]                  // ideographic space as the prefix of a word
    public void Split_MatchesHuggingFace(string text, string[] expected)
    {
        var pieces = Qwen2PreTokenizer.Split(text).Select(p => text.Substring(p.Offset, p.Length));
        Assert.Equal(expected, pieces);
    }

    [Fact]
    public void Split_CoversTheTextWithoutGaps_EvenWithLoneSurrogates()
    {
        const string text = "a\ud800b \udc00\n\ud83d";
        var pieces = Qwen2PreTokenizer.Split(text);
        Assert.Equal(text, string.Concat(pieces.Select(p => text.Substring(p.Offset, p.Length))));
    }
}
