using System.Text.Json;
using Qwen2VL.Model.Text;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Text;

/// <summary>
/// Every reference pair shipped with the real Qwen2-VL tokenizer (see tests/tokenizer/qwen2-vl/README.md):
/// ids produced by Hugging Face tokenizers, collected by llama.cpp, transformers and transformers.js.
/// </summary>
[Collection(RealTokenizerCollection.Name)]
public sealed class TokenizerPairsTests(Qwen2TokenizerFixture fixture, ITestOutputHelper output)
{
    private readonly Qwen2Tokenizer _tokenizer = fixture.Tokenizer;

    public sealed record Pair(string Text, int[] Ids, string[]? Tokens, string? Decoded, string? Name);

    private static List<Pair> ReadPairs(string file) =>
        JsonSerializer.Deserialize<List<Pair>>(File.ReadAllText(Path.Combine(TokenizerTestData.PairsDir, file)),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    [Fact]
    public void Load_IsFastAndSeesTheWholeVocabulary()
    {
        output.WriteLine($"Qwen2Tokenizer.Load of the 7 MB tokenizer.json took {fixture.LoadTime.TotalMilliseconds:F0} ms");
        Assert.Equal(151657, _tokenizer.VocabSize);
        Assert.Equal(14, _tokenizer.AddedTokens.Count);
        Assert.True(fixture.LoadTime < TimeSpan.FromSeconds(5), $"load took {fixture.LoadTime}");
    }

    [Fact]
    public void CompressedCopy_IsTheRealTokenizerJson()
    {
        // sha256 of the shared Qwen2-VL tokenizer.json, as written in tests/tokenizer/README.md
        using var file = File.OpenRead(fixture.TokenizerJsonPath);
        Assert.Equal("9421559eb18ca1a0cb295fada0a99fdc898c6d81ab172c8ed870c9d964d17a85",
            Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(file)));
    }

    [Theory]
    [InlineData("independent_pairs.json")]
    [InlineData("transformersjs_qwen2.json")]
    [InlineData("transformers_qwen2_integration.json")]
    public void Encode_MatchesEveryPair(string file)
    {
        var pairs = ReadPairs(file);
        Assert.NotEmpty(pairs);
        var failures = new List<string>();
        foreach (var pair in pairs)
        {
            var ids = _tokenizer.Encode(pair.Text);
            if (!ids.SequenceEqual(pair.Ids))
                failures.Add($"{pair.Name ?? JsonSerializer.Serialize(pair.Text)}: expected [{string.Join(' ', pair.Ids)}] got [{string.Join(' ', ids)}]");
        }
        Assert.True(failures.Count == 0, $"{failures.Count}/{pairs.Count} pairs differ:\n" + string.Join('\n', failures));
        output.WriteLine($"{file}: {pairs.Count}/{pairs.Count} pairs equal");
    }

    [Fact]
    public void TransformersJs_TokensAndDecodedTextMatch()
    {
        foreach (var pair in ReadPairs("transformersjs_qwen2.json"))
        {
            Assert.Equal(pair.Tokens!, pair.Ids.Select(_tokenizer.IdToToken));
            Assert.Equal(pair.Decoded!, _tokenizer.Decode(pair.Ids));
        }
    }

    [Fact]
    public void Decode_OfEveryPairGivesBackItsNfcText()
    {
        foreach (var file in new[] { "independent_pairs.json", "transformers_qwen2_integration.json" })
            foreach (var pair in ReadPairs(file))
                Assert.Equal(pair.Text.Normalize(System.Text.NormalizationForm.FormC), _tokenizer.Decode(pair.Ids));
    }

    public static TheoryData<string> LlamaCppFiles()
    {
        var data = new TheoryData<string>();
        var dir = Path.Combine(TokenizerTestData.PairsDir, "llama.cpp");
        foreach (var inp in Directory.GetFiles(dir, "*.inp", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(dir, inp));
        return data;
    }

    /// <summary>llama.cpp's .inp/.out: texts separated by "\n__ggml_vocab_test__\n"; one line of " id id ..." per text.</summary>
    [Theory]
    [MemberData(nameof(LlamaCppFiles))]
    public void Encode_MatchesLlamaCppPairs(string inp)
    {
        var dir = Path.Combine(TokenizerTestData.PairsDir, "llama.cpp");
        var texts = File.ReadAllText(Path.Combine(dir, inp)).Split("\n__ggml_vocab_test__\n");
        Assert.Equal("", texts[^1]);
        texts = texts[..^1];
        var lines = File.ReadAllText(Path.Combine(dir, Path.ChangeExtension(inp, ".out"))).Split('\n');
        Assert.Equal("", lines[^1]);
        Assert.Equal(texts.Length, lines.Length - 1);
        for (var i = 0; i < texts.Length; i++)
        {
            var expected = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            var ids = _tokenizer.Encode(texts[i]);
            Assert.True(ids.SequenceEqual(expected),
                $"{inp} case {i} {JsonSerializer.Serialize(texts[i])}: expected [{string.Join(' ', expected)}] got [{string.Join(' ', ids)}]");
        }
        output.WriteLine($"{inp}: {texts.Length} cases equal");
    }
}
