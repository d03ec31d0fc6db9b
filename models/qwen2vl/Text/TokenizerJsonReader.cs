using Qwen2VL.Runtime;
using System.Text.Json;

namespace Qwen2VL.Model.Text;

/// <summary>One entry of <c>added_tokens</c>: matched whole in raw text; <see cref="Special"/> ones can be skipped on decode.</summary>
public sealed record AddedToken(int Id, string Content, bool Special);

/// <summary>
/// What a byte-level BPE <c>tokenizer.json</c> holds once checked: vocab, merges in rank order (each written
/// "left right", the form Microsoft.ML.Tokenizers takes), added tokens, and whether NFC is on.
/// </summary>
public sealed record TokenizerDefinition(
    IReadOnlyDictionary<string, int> Vocab,
    IReadOnlyList<string> Merges,
    IReadOnlyList<AddedToken> AddedTokens,
    bool Nfc);

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> of the Qwen2 kind and rejects, with a one-line message, anything this
/// implementation would tokenize differently from HF: another model type or pre-tokenizer pattern, an unk token,
/// dropout, subword prefixes, byte fallback, <c>ignore_merges</c>, or added tokens with lstrip/rstrip/single_word
/// or <c>normalized: true</c>.
/// </summary>
public static class TokenizerJsonReader
{
    public static TokenizerDefinition Read(string path)
    {
        if (!File.Exists(path)) throw new TokenizerException($"tokenizer file not found: {path}");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(InputFile.ReadAllBytes(path, path), StrictJson.DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{path} is not valid JSON: {e.Message}", e);
        }
        catch (ModelException e) when (e is not TokenizerException)
        {
            throw new TokenizerException(e.Message, e);
        }
        try { StrictJson.Validate(doc, path); } // one JSON policy for every file (duplicate keys, invalid UTF-8)
        catch (ModelException e) when (e is not TokenizerException)
        {
            doc.Dispose();
            throw new TokenizerException(e.Message, e);
        }
        using (doc)
        {
            try
            {
                return Read(doc.RootElement);
            }
            catch (TokenizerException e)
            {
                throw new TokenizerException($"{path}: {e.Message}", e);
            }
        }
    }

    public static TokenizerDefinition Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new TokenizerException("the top level is not a JSON object");
        var nfc = ReadNormalizer(Optional(root, "normalizer"));
        CheckPreTokenizer(Optional(root, "pre_tokenizer"));
        CheckByteLevel(Optional(root, "decoder"), "decoder");
        var model = Required(root, "model");
        var (vocab, merges) = ReadBpeModel(model);
        var added = ReadAddedTokens(Optional(root, "added_tokens"));
        return new TokenizerDefinition(vocab, merges, added, nfc);
    }

    private static bool ReadNormalizer(JsonElement? normalizer)
    {
        if (normalizer is null) return false;
        var type = TypeOf(normalizer.Value, "normalizer");
        if (type != "NFC") throw new TokenizerException($"normalizer type '{type}' is not supported (expected NFC or null)");
        return true;
    }

    private static void CheckPreTokenizer(JsonElement? preTokenizer)
    {
        // Qwen2: Sequence[ Split(pattern, Isolated, invert false), ByteLevel(add_prefix_space false, use_regex false) ]
        if (preTokenizer is null) throw new TokenizerException("pre_tokenizer is missing (expected the Qwen2 Split + ByteLevel sequence)");
        var pt = preTokenizer.Value;
        if (TypeOf(pt, "pre_tokenizer") != "Sequence" || !pt.TryGetProperty("pretokenizers", out var list)
            || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() != 2)
            throw new TokenizerException("pre_tokenizer is not the Qwen2 sequence of Split then ByteLevel");
        var split = list[0];
        if (TypeOf(split, "pre_tokenizer[0]") != "Split")
            throw new TokenizerException("pre_tokenizer[0] is not a Split");
        var pattern = split.TryGetProperty("pattern", out var p) && p.ValueKind == JsonValueKind.Object
            && p.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        if (pattern != Qwen2PreTokenizer.Pattern)
            throw new TokenizerException($"pre_tokenizer Split pattern {JsonText.Quote(pattern)} is not the Qwen2 pattern, the only one implemented");
        if (StringOf(split, "behavior") != "Isolated" || BoolOf(split, "invert", false))
            throw new TokenizerException("pre_tokenizer Split must have behavior Isolated and invert false");
        CheckByteLevel(list[1], "pre_tokenizer[1]");
        if (BoolOf(list[1], "use_regex", true))
            throw new TokenizerException("pre_tokenizer[1] ByteLevel must have use_regex false");
    }

    private static void CheckByteLevel(JsonElement? element, string where)
    {
        if (element is null) throw new TokenizerException($"{where} is missing (expected ByteLevel)");
        var type = TypeOf(element.Value, where);
        if (type != "ByteLevel") throw new TokenizerException($"{where} type '{type}' is not supported (expected ByteLevel)");
        if (BoolOf(element.Value, "add_prefix_space", false))
            throw new TokenizerException($"{where} ByteLevel add_prefix_space true is not supported");
    }

    private static (Dictionary<string, int>, List<string>) ReadBpeModel(JsonElement model)
    {
        var type = TypeOf(model, "model");
        if (type != "BPE") throw new TokenizerException($"model type '{type}' is not supported (expected BPE)");
        if (Optional(model, "unk_token") is not null) throw new TokenizerException("model.unk_token is not supported (byte-level BPE needs none)");
        if (Optional(model, "dropout") is not null) throw new TokenizerException("model.dropout is not supported");
        if (!string.IsNullOrEmpty(StringOf(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(StringOf(model, "end_of_word_suffix")))
            throw new TokenizerException("model.continuing_subword_prefix / end_of_word_suffix are not supported");
        if (BoolOf(model, "byte_fallback", false)) throw new TokenizerException("model.byte_fallback is not supported");
        if (BoolOf(model, "ignore_merges", false)) throw new TokenizerException("model.ignore_merges true is not supported");

        var vocabElement = Required(model, "vocab");
        if (vocabElement.ValueKind != JsonValueKind.Object) throw new TokenizerException("model.vocab is not an object");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id < 0)
                throw new TokenizerException($"model.vocab entry {JsonText.Quote(entry.Name)} has no valid id");
            vocab[entry.Name] = id;
        }
        foreach (var b in ByteLevelAlphabet.VocabularyOrder)
        {
            var token = ByteLevelAlphabet.Encode(b).ToString();
            if (!vocab.ContainsKey(token))
                throw new TokenizerException($"model.vocab lacks the single-byte token {JsonText.Quote(token)} (byte 0x{b:X2}); byte-level BPE needs all 256");
        }

        var lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        var mergesElement = Required(model, "merges");
        if (mergesElement.ValueKind != JsonValueKind.Array) throw new TokenizerException("model.merges is not an array");
        var merges = new List<string>(mergesElement.GetArrayLength());
        var rank = 0;
        foreach (var m in mergesElement.EnumerateArray())
        {
            var (merge, space) = ParseMerge(m, rank);
            var left = merge.AsSpan(0, space);
            var right = merge.AsSpan(space + 1);
            if (!lookup.ContainsKey(left) || !lookup.ContainsKey(right) || !lookup.ContainsKey(string.Concat(left, right)))
                throw new TokenizerException($"model.merges[{rank}] \"{merge}\" uses or makes a token missing from model.vocab");
            merges.Add(merge);
            rank++;
        }
        return (vocab, merges);
    }

    /// <summary>
    /// A merge is written "left right" (tokenizers ≤ 0.19) or ["left", "right"] (newer); either way it comes back as
    /// "left right" with the index of the space. Byte-level tokens never hold a space (it is 'Ġ').
    /// </summary>
    private static (string Merge, int Space) ParseMerge(JsonElement m, int rank)
    {
        string? merge = null;
        if (m.ValueKind == JsonValueKind.String)
            merge = m.GetString()!;
        else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            merge = m[0].GetString() + " " + m[1].GetString();
        if (merge is not null)
        {
            var space = merge.IndexOf(' ');
            if (space > 0 && space < merge.Length - 1 && merge.IndexOf(' ', space + 1) < 0) return (merge, space);
        }
        throw new TokenizerException($"model.merges[{rank}] is neither \"left right\" nor [\"left\", \"right\"]");
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement? element)
    {
        var list = new List<AddedToken>();
        if (element is null) return list;
        if (element.Value.ValueKind != JsonValueKind.Array) throw new TokenizerException("added_tokens is not an array");
        var index = 0;
        foreach (var t in element.Value.EnumerateArray())
        {
            var content = StringOf(t, "content");
            if (string.IsNullOrEmpty(content) || !t.TryGetProperty("id", out var idElement) || !idElement.TryGetInt32(out var id) || id < 0)
                throw new TokenizerException($"added_tokens[{index}] needs a non-empty content and an id >= 0");
            foreach (var flag in new[] { "lstrip", "rstrip", "single_word", "normalized" })
                if (BoolOf(t, flag, false))
                    throw new TokenizerException($"added token {JsonText.Quote(content)} has {flag} true, which is not supported");
            list.Add(new AddedToken(id, content, BoolOf(t, "special", false)));
            index++;
        }
        return list;
    }

    private static JsonElement Required(JsonElement obj, string name) =>
        Optional(obj, name) ?? throw new TokenizerException($"'{name}' is missing");

    /// <summary>The property, or null when it is absent or JSON null.</summary>
    private static JsonElement? Optional(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static string TypeOf(JsonElement obj, string where) =>
        StringOf(obj, "type") ?? throw new TokenizerException($"{where} has no \"type\"");

    private static string? StringOf(JsonElement obj, string name) =>
        Optional(obj, name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    private static bool BoolOf(JsonElement obj, string name, bool fallback) =>
        Optional(obj, name) is { } v && (v.ValueKind == JsonValueKind.True || v.ValueKind == JsonValueKind.False)
            ? v.GetBoolean() : fallback;
}
