using System.Text.Json;
using Qwen2VL.Model.Text;
using Xunit;

namespace Qwen2VL.Tests.Text;

/// <summary>
/// 1,500 random texts (all whitespace kinds, CR/LF, contractions, combining marks, scripts, emoji, letters and
/// digits outside the BMP, control characters, added tokens whole and broken) and 400 random id sequences (lone
/// UTF-8 bytes included), tokenized and decoded by Hugging Face tokenizers 0.23.2 with the real Qwen2-VL
/// tokenizer.json (tests/tokenizer/tools/make_hf_fuzz_pairs.js).
/// </summary>
[Collection(RealTokenizerCollection.Name)]
public sealed class TokenizerHfFuzzTests(Qwen2TokenizerFixture fixture)
{
    private readonly Qwen2Tokenizer _tokenizer = fixture.Tokenizer;

    private sealed record EncodeCase(string Text, int[] Ids);

    private sealed record DecodeCase(int[] Ids, string Decoded, string DecodedSkipSpecial);

    private sealed record FuzzFile(EncodeCase[] Encode, DecodeCase[] Decode);

    private static readonly FuzzFile Data = JsonSerializer.Deserialize<FuzzFile>(
        File.ReadAllText(Path.Combine(TokenizerTestData.RepoRoot, "tests", "tokenizer", "hf_fuzz_pairs.json")),
        new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;

    [Fact]
    public void Encode_MatchesHuggingFaceOnRandomTexts()
    {
        Assert.Equal(1500, Data.Encode.Length);
        var failures = Data.Encode
            .Where(c => !_tokenizer.Encode(c.Text).SequenceEqual(c.Ids))
            .Select(c => $"{JsonSerializer.Serialize(c.Text)}: expected [{string.Join(' ', c.Ids)}] got [{string.Join(' ', _tokenizer.Encode(c.Text))}]")
            .ToList();
        Assert.True(failures.Count == 0, $"{failures.Count} texts differ:\n" + string.Join('\n', failures.Take(20)));
    }

    [Fact]
    public void Decode_MatchesHuggingFaceOnRandomIds()
    {
        Assert.Equal(400, Data.Decode.Length);
        Assert.Contains(Data.Decode, c => c.Decoded.Contains('\uFFFD'));
        foreach (var c in Data.Decode)
        {
            Assert.Equal(c.Decoded, _tokenizer.Decode(c.Ids));
            Assert.Equal(c.DecodedSkipSpecial, _tokenizer.Decode(c.Ids, skipSpecialTokens: true));
        }
    }
}
