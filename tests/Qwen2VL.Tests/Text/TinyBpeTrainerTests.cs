using System.Text;
using Qwen2VL.Model.Text;
using Xunit;

namespace Qwen2VL.Tests.Text;

public sealed class TinyBpeTrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-tinybpe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The special tokens and ids of the fixture model (tests/fixtures/qwen2vl-tiny/config.json).</summary>
    public static readonly IReadOnlyDictionary<string, int> FixtureSpecials = new Dictionary<string, int>
    {
        ["<|vision_start|>"] = 500, ["<|vision_end|>"] = 501, ["<|image_pad|>"] = 502, ["<|video_pad|>"] = 503,
        ["<|im_end|>"] = 504, ["<|endoftext|>"] = 505, ["<|im_start|>"] = 506, ["<|vision_pad|>"] = 507,
    };

    /// <summary>The fixture's corpus plus a few lines with digits, tabs, accents and CJK.</summary>
    private static readonly string[] SmallCorpus =
    [
        .. File.ReadAllText(Path.Combine(Path.GetDirectoryName(TokenizerTestData.TinyTokenizerPath)!, "corpus.txt")).Split("\n\n"),
        "The cat sat on the mat. The dog sat on the log.",
        "<|im_start|>user\nWhat colour is the cat?<|im_end|>\n<|im_start|>assistant\nThe cat is black and white.<|im_end|>\n",
        "Numbers like 12345 and 2024 are split into digits; spaces   and\ttabs\nand new lines too.",
        "Héllo wörld, naïve café — ünïcödé text is fine. 中文也可以。",
    ];

    private Qwen2Tokenizer TrainAndLoad(IEnumerable<string> corpus, int vocabSize, IReadOnlyDictionary<string, int> specials)
    {
        var path = Path.Combine(_dir, "tokenizer.json");
        TinyBpeTrainer.TrainToFile(corpus, vocabSize, specials, path);
        return Qwen2Tokenizer.Load(path);
    }

    [Fact]
    public void Trained_Vocab500_RoundTripsAnyText()
    {
        var tokenizer = TrainAndLoad(SmallCorpus, 500, FixtureSpecials);
        Assert.Equal(508, tokenizer.VocabSize);
        foreach (var text in new[]
                 {
                     "The cat sat on the mat.", "completely unseen words: xylophone, quizzical, 😀👍🏽👨‍👩‍👧, 🇺🇸",
                     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|vision_start|><|image_pad|><|vision_end|>",
                     "日本語のテキスト 한국어 Ελληνικά", "e\u0301 (NFC gives é)", "", "   \n\n\t ",
                 })
        {
            var ids = tokenizer.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, 511));
            Assert.Equal(text.Normalize(NormalizationForm.FormC), tokenizer.Decode(ids));
        }
    }

    [Fact]
    public void Trained_SpecialTokensGetTheirIds_AndCommonWordsBecomeSingleTokens()
    {
        var tokenizer = TrainAndLoad(SmallCorpus, 500, FixtureSpecials);
        Assert.Equal([506, 504, 502], tokenizer.Encode("<|im_start|><|im_end|><|image_pad|>"));
        Assert.Single(tokenizer.Encode(" cat"));
        Assert.Single(tokenizer.Encode("The"));
        Assert.True(tokenizer.IsSpecial(507));
        Assert.Equal("cat", tokenizer.Decode(tokenizer.Encode("<|vision_pad|>cat"), skipSpecialTokens: true));
    }

    [Fact]
    public void Train_IsDeterministic()
    {
        Assert.Equal(TinyBpeTrainer.Train(SmallCorpus, 400, FixtureSpecials), TinyBpeTrainer.Train(SmallCorpus, 400, FixtureSpecials));
    }

    [Fact]
    public void Train_BadArguments_AreNamed()
    {
        Assert.Contains("below 256", Assert.Throws<TokenizerException>(() => TinyBpeTrainer.Train(SmallCorpus, 100, FixtureSpecials)).Message);
        Assert.Contains("inside the regular ids 0..509",
            Assert.Throws<TokenizerException>(() => TinyBpeTrainer.Train(SmallCorpus, 510, FixtureSpecials)).Message);
        Assert.Contains("too small for vocab 5000",
            Assert.Throws<TokenizerException>(() => TinyBpeTrainer.Train(["tiny"], 5000, new Dictionary<string, int>())).Message);
    }

    [Fact]
    public void FixtureTokenizer_IsWhatTheTrainerMakesFromItsCorpus()
    {
        var dir = Path.GetDirectoryName(TokenizerTestData.TinyTokenizerPath)!;
        var corpus = File.ReadAllText(Path.Combine(dir, "corpus.txt")).Split("\n\n");
        var expected = File.ReadAllBytes(TokenizerTestData.TinyTokenizerPath);
        var actual = Encoding.UTF8.GetBytes(TinyBpeTrainer.Train(corpus, 500, FixtureSpecials));
        Assert.True(expected.SequenceEqual(actual), "tests/fixtures/qwen2vl-tiny-tokenizer/tokenizer.json differs from a fresh training run");

        var tokenizer = Qwen2Tokenizer.Load(TokenizerTestData.TinyTokenizerPath);
        Assert.Equal(508, tokenizer.VocabSize);
        var prompt = ChatTemplate.Render([new ChatMessage("user", [ChatContent.Image(), ChatContent.Text("Describe this image.")])], addGenerationPrompt: true);
        var ids = tokenizer.Encode(VisionPlaceholders.Expand(prompt, [(1, 4, 4)], []));
        Assert.Equal(4, ids.Count(id => id == 502));
        Assert.Equal(VisionPlaceholders.Expand(prompt, [(1, 4, 4)], []), tokenizer.Decode(ids));
    }

    /// <summary>Ids that Hugging Face tokenizers 0.23.2 gives with the fixture tokenizer.json.</summary>
    [Theory]
    [InlineData("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", new[] { 506, 451, 198, 369, 292, 256, 391, 340, 13, 504, 198 })]
    [InlineData("Describe this image.", new[] { 349, 346, 305, 13 })]
    [InlineData("The red ball is on the green table.", new[] { 271, 339, 459, 265, 306, 261, 321, 495, 13 })]
    [InlineData("xylophone 😀 中文 e\u0301", new[] { 87, 88, 75, 78, 79, 71, 333, 68, 220, 172, 253, 246, 222, 220, 160, 116, 255, 162, 244, 229, 220, 127, 102 })]
    public void FixtureTokenizer_MatchesHuggingFace(string text, int[] expected)
    {
        Assert.Equal(expected, Qwen2Tokenizer.Load(TokenizerTestData.TinyTokenizerPath).Encode(text));
    }
}

/// <summary>The writer, fed the real Qwen2-VL vocabulary, merges and added tokens, gives back the real file byte for byte.</summary>
[Collection(RealTokenizerCollection.Name)]
public sealed class TokenizerJsonWriterTests(Qwen2TokenizerFixture fixture)
{
    [Fact]
    public void Write_ReproducesTheRealTokenizerJson()
    {
        var definition = TokenizerJsonReader.Read(fixture.TokenizerJsonPath);
        var vocab = definition.Vocab.OrderBy(v => v.Value).Select(v => v.Key).ToList();
        var merges = definition.Merges.Select(m => (m[..m.IndexOf(' ')], m[(m.IndexOf(' ') + 1)..])).ToList();
        var written = TokenizerJsonWriter.Write(vocab, merges, definition.AddedTokens);
        var expected = File.ReadAllText(fixture.TokenizerJsonPath);
        Assert.True(expected == written, $"first difference at char {expected.Zip(written).TakeWhile(p => p.First == p.Second).Count()}");
    }
}
