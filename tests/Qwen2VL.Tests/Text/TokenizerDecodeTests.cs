using System.Text;
using System.Text.Json;
using Qwen2VL.Model.Text;
using Xunit;

namespace Qwen2VL.Tests.Text;

[Collection(RealTokenizerCollection.Name)]
public sealed class TokenizerDecodeTests(Qwen2TokenizerFixture fixture)
{
    private readonly Qwen2Tokenizer _tokenizer = fixture.Tokenizer;

    [Fact]
    public void Decode_InvalidUtf8_BecomesReplacementCharacters()
    {
        // "中" is E4 B8 AD; byte tokens are ids 0..255 in GPT-2 order, so find them by their byte-level characters.
        int Byte(byte b) => _tokenizer.TokenToId(ByteLevelAlphabet.Encode(b).ToString())!.Value;
        Assert.Equal("中", _tokenizer.Decode([Byte(0xE4), Byte(0xB8), Byte(0xAD)]));
        Assert.Equal("\uFFFDa", _tokenizer.Decode([Byte(0xE4), Byte(0xB8), Byte((byte)'a')]));
        Assert.Equal("\uFFFD\uFFFD", _tokenizer.Decode([Byte(0xFF), Byte(0xAD)]));
    }

    [Fact]
    public void Decode_SkipSpecialTokens_DropsOnlySpecialTokens()
    {
        var ids = _tokenizer.Encode("<|im_start|>user\nhi<|im_end|>");
        Assert.Equal("<|im_start|>user\nhi<|im_end|>", _tokenizer.Decode(ids));
        Assert.Equal("user\nhi", _tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Encode_LoneSurrogate_IsEncodedAsTheReplacementCharacter()
    {
        // A .NET string can hold a lone surrogate, which UTF-8 (and a Rust string) cannot: it counts as U+FFFD.
        Assert.Equal(_tokenizer.Encode("a\uFFFDb"), _tokenizer.Encode("a\uD800b"));
    }

    [Fact]
    public void TokenLookup_GoesBothWays()
    {
        Assert.Equal(151655, _tokenizer.TokenToId("<|image_pad|>"));
        Assert.Equal("<|image_pad|>", _tokenizer.IdToToken(151655));
        Assert.Equal("Ġworld", _tokenizer.IdToToken(1879));
        Assert.Equal(1879, _tokenizer.TokenToId("Ġworld"));
        Assert.Null(_tokenizer.TokenToId("not a token at all"));
    }

    [Theory]
    [InlineData(151657)]
    [InlineData(-1)]
    [InlineData(151935)]
    public void Decode_IdOutsideTheVocabulary_NamesIdAndSize(int id)
    {
        var e = Assert.Throws<TokenizerException>(() => _tokenizer.Decode([9707, id]));
        Assert.Contains($"token id {id}", e.Message);
        Assert.Contains("151657", e.Message);
        Assert.Throws<TokenizerException>(() => _tokenizer.IdToToken(id));
        Assert.Throws<TokenizerException>(() => new TokenStreamDecoder(_tokenizer).Add(id));
    }

    private static IEnumerable<int[]> AllReferenceIdSequences()
    {
        var pairs = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerTestData.PairsDir, "independent_pairs.json")));
        foreach (var p in pairs.RootElement.EnumerateArray())
            yield return p.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray();
        var fuzz = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerTestData.RepoRoot, "tests", "tokenizer", "hf_fuzz_pairs.json")));
        foreach (var c in fuzz.RootElement.GetProperty("decode").EnumerateArray())
            yield return c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray();
    }

    [Fact]
    public void StreamDecoder_JoinsToTheFullDecode_AndNeverSplitsACharacter()
    {
        var sequences = 0;
        foreach (var ids in AllReferenceIdSequences())
        {
            foreach (var skip in new[] { false, true })
            {
                var stream = new TokenStreamDecoder(_tokenizer, skip);
                var sb = new StringBuilder();
                foreach (var id in ids)
                {
                    var piece = stream.Add(id);
                    // A returned piece never ends inside a surrogate pair.
                    Assert.False(piece.Length > 0 && char.IsHighSurrogate(piece[^1]));
                    sb.Append(piece);
                }
                sb.Append(stream.Flush());
                Assert.Equal(_tokenizer.Decode(ids, skip), sb.ToString());
            }
            sequences++;
        }
        Assert.True(sequences > 400);
    }

    [Fact]
    public void StreamDecoder_HoldsBackAnUnfinishedCharacter()
    {
        int Byte(byte b) => _tokenizer.TokenToId(ByteLevelAlphabet.Encode(b).ToString())!.Value;
        var stream = new TokenStreamDecoder(_tokenizer);
        Assert.Equal("Hello", stream.Add(9707));
        Assert.Equal("", stream.Add(Byte(0xF0)));   // 😀 = F0 9F 98 80
        Assert.Equal("", stream.Add(Byte(0x9F)));
        Assert.Equal("", stream.Add(Byte(0x98)));
        Assert.Equal("😀", stream.Add(Byte(0x80)));
        Assert.Equal("", stream.Add(Byte(0xE4)));
        Assert.Equal("\uFFFD", stream.Flush());
    }
}
