using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Qwen2VL.Model.Text;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Text;

[Collection(RealTokenizerCollection.Name)]
public sealed class TokenizerLoadTests(Qwen2TokenizerFixture fixture, ITestOutputHelper output)
    : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-tokload-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The real file with one edit applied, written to a temp file.</summary>
    private string RealWith(Action<JsonNode> edit)
    {
        var root = JsonNode.Parse(File.ReadAllText(fixture.TokenizerJsonPath))!;
        edit(root);
        return Write("edited.json", root.ToJsonString());
    }

    [Fact]
    public void MissingFile_NamesThePath()
    {
        var path = Path.Combine(_dir, "nope.json");
        var e = Assert.Throws<TokenizerException>(() => Qwen2Tokenizer.Load(path));
        Assert.Equal($"tokenizer file not found: {path}", e.Message);
    }

    [Fact]
    public void BadJson_SaysSo()
    {
        var path = Write("bad.json", "{\"model\": ");
        var e = Assert.Throws<TokenizerException>(() => Qwen2Tokenizer.Load(path));
        Assert.StartsWith($"{path} is not valid JSON", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void OtherPreTokenizerPattern_IsRejected()
    {
        var path = RealWith(r => r["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = "\\s+");
        var e = Assert.Throws<TokenizerException>(() => Qwen2Tokenizer.Load(path));
        Assert.Contains("is not the Qwen2 pattern", e.Message);
    }

    [Fact]
    public void OtherModelType_IsRejected()
    {
        var path = RealWith(r => r["model"]!["type"] = "WordPiece");
        var e = Assert.Throws<TokenizerException>(() => Qwen2Tokenizer.Load(path));
        Assert.Contains("model type 'WordPiece' is not supported (expected BPE)", e.Message);
    }

    [Fact]
    public void MissingByteToken_IsRejected()
    {
        var path = RealWith(r => r["model"]!["vocab"]!.AsObject().Remove("Ġ"));
        var e = Assert.Throws<TokenizerException>(() => Qwen2Tokenizer.Load(path));
        Assert.Contains("lacks the single-byte token \"Ġ\" (byte 0x20)", e.Message);
    }

    [Fact]
    public void AddedTokenWithLstrip_IsRejected()
    {
        var path = RealWith(r => r["added_tokens"]![1]!["lstrip"] = true);
        var e = Assert.Throws<TokenizerException>(() => Qwen2Tokenizer.Load(path));
        Assert.Contains("\"<|im_start|>\" has lstrip true", e.Message);
    }

    [Fact]
    public void MergesAsPairs_LoadTheSame()
    {
        // tokenizers >= 0.20 writes merges as ["a", "b"] arrays.
        var path = RealWith(r =>
        {
            var merges = r["model"]!["merges"]!.AsArray();
            var pairs = new JsonArray(merges.Select(m => (JsonNode)new JsonArray(m!.GetValue<string>().Split(' ').Select(p => (JsonNode)JsonValue.Create(p)!).ToArray())).ToArray());
            r["model"]!["merges"] = pairs;
        });
        var tokenizer = Qwen2Tokenizer.Load(path);
        const string text = "Transformers provide thousands of pretrained models 😀 中文";
        Assert.Equal(fixture.Tokenizer.Encode(text), tokenizer.Encode(text));
    }

    /// <summary>Throughput on English prose, single-threaded; printed, not asserted (the machine is shared).</summary>
    [Fact]
    public void Encode_Throughput_IsMeasured()
    {
        var sentences = new[]
        {
            "The quick brown fox jumps over the lazy dog near the riverbank.",
            "Vision-language models read images as sequences of merged patches, then answer questions about them.",
            "In 2024, researchers released Qwen2-VL with dynamic resolution and multimodal rotary position embeddings.",
            "She said, \"It's not what you look at that matters, it's what you see.\"",
            "Tokenizers split text into pieces; byte-level BPE never needs an unknown token.",
        };
        var sb = new StringBuilder();
        var random = new Random(7);
        while (sb.Length < 2_000_000)
            sb.Append(sentences[random.Next(sentences.Length)]).Append(random.Next(8) == 0 ? "\n\n" : " ");
        var text = sb.ToString();
        var megabytes = Encoding.UTF8.GetByteCount(text) / 1e6;

        fixture.Tokenizer.Encode(text[..10_000]); // warm up the JIT and the word cache
        var watch = Stopwatch.StartNew();
        var ids = fixture.Tokenizer.Encode(text);
        var seconds = watch.Elapsed.TotalSeconds;
        output.WriteLine($"encoded {megabytes:F2} MB of English into {ids.Count} ids in {seconds * 1000:F0} ms: {megabytes / seconds:F2} MB/s");
        Assert.Equal(text, fixture.Tokenizer.Decode(ids));
    }
}
