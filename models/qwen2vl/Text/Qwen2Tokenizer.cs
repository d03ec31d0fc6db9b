using System.Text;
using Microsoft.ML.Tokenizers;

namespace Qwen2VL.Model.Text;

/// <summary>
/// The Qwen2 / Qwen2-VL tokenizer (spec §4.3): added tokens matched whole in the raw text, NFC, the Qwen2 split
/// regex, byte-level BPE by merge rank; decoding reassembles the bytes and decodes UTF-8 with U+FFFD for invalid
/// sequences. No BOS or EOS is ever added.
/// </summary>
/// <remarks>
/// The BPE step itself (GPT-2 byte mapping, merges by rank, word cache) is Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/> with <c>ByteLevel = true</c>. Around it this class supplies what that library lacks
/// or does differently: (1) added-token matching on the raw text with HF's leftmost-longest rule, before NFC
/// (<see cref="AddedTokenMatcher"/>; the library matches special tokens inside its pre-tokenizer, after
/// normalization); (2) the split regex on code points (<see cref="Qwen2PreTokenizer"/>; a .NET Regex sees UTF-16
/// surrogates); (3) an NFC normalizer (<see cref="NfcNormalizer"/>; none ships); (4) decoding, done here from
/// per-token bytes so that invalid UTF-8 is replaced over the whole sequence as HF does, and so that
/// <see cref="TokenStreamDecoder"/> can hold back an incomplete character.
/// </remarks>
public sealed class Qwen2Tokenizer
{
    private readonly BpeTokenizer _bpe;
    private readonly AddedTokenMatcher _addedTokens;
    private readonly IReadOnlyDictionary<string, int> _vocab;
    private readonly Dictionary<string, int> _addedTokenIds;
    private readonly string?[] _idToToken;
    private readonly byte[]?[] _idToBytes;
    private readonly bool[] _isSpecial;

    private Qwen2Tokenizer(TokenizerDefinition definition)
    {
        var vocab = definition.Vocab;
        VocabSize = Math.Max(
            vocab.Count == 0 ? 0 : vocab.Values.Max() + 1,
            definition.AddedTokens.Count == 0 ? 0 : definition.AddedTokens.Max(t => t.Id) + 1);
        _idToToken = new string?[VocabSize];
        _idToBytes = new byte[]?[VocabSize];
        _isSpecial = new bool[VocabSize];
        _vocab = vocab;
        _addedTokenIds = new Dictionary<string, int>(StringComparer.Ordinal);

        foreach (var (token, id) in vocab)
        {
            if (_idToToken[id] is { } other)
                throw new TokenizerException($"id {id} is given to both {JsonText.Quote(other)} and {JsonText.Quote(token)}");
            _idToToken[id] = token;
        }
        foreach (var added in definition.AddedTokens)
        {
            if (_idToToken[added.Id] is { } other && other != added.Content)
                throw new TokenizerException($"added token {JsonText.Quote(added.Content)} reuses id {added.Id} of {JsonText.Quote(other)}");
            _idToToken[added.Id] = added.Content;
            _isSpecial[added.Id] = added.Special;
            _addedTokenIds[added.Content] = added.Id;
        }
        AddedTokens = definition.AddedTokens;
        _addedTokens = new AddedTokenMatcher(definition.AddedTokens.Select(t => KeyValuePair.Create(t.Content, t.Id)));

        _bpe = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = definition.Merges,
            ByteLevel = true,
            PreTokenizer = Qwen2PreTokenizer.Instance,
            Normalizer = definition.Nfc ? NfcNormalizer.Instance : null,
        });
    }

    /// <summary>Number of ids: one past the largest id of the vocabulary and the added tokens (151657 for Qwen2-VL).</summary>
    public int VocabSize { get; }

    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>Loads a Hugging Face <c>tokenizer.json</c>; anything unsupported or malformed is a <see cref="TokenizerException"/>.</summary>
    public static Qwen2Tokenizer Load(string tokenizerJsonPath)
    {
        var definition = TokenizerJsonReader.Read(tokenizerJsonPath);
        try
        {
            return new Qwen2Tokenizer(definition);
        }
        catch (TokenizerException e)
        {
            throw new TokenizerException($"{tokenizerJsonPath}: {e.Message}", e);
        }
    }

    /// <summary>Ids of <paramref name="text"/>; added tokens written in the text become their ids.</summary>
    public IReadOnlyList<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (start, length, id) in _addedTokens.Split(text))
        {
            if (id >= 0) ids.Add(id);
            else ids.AddRange(_bpe.EncodeToIds(text.AsSpan(start, length)));
        }
        return ids;
    }

    /// <summary>
    /// Text of <paramref name="ids"/>: the bytes of all tokens joined, then UTF-8 decoded with U+FFFD for invalid
    /// sequences. Special added tokens are left out when <paramref name="skipSpecialTokens"/> is set.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
            if (!skipSpecialTokens || !IsSpecial(id))
                bytes.AddRange(BytesOf(id));
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public int? TokenToId(string token) =>
        _addedTokenIds.TryGetValue(token, out var id) || _vocab.TryGetValue(token, out id) ? id : null;

    /// <summary>The token string of an id: byte-level characters for BPE tokens, the content for added tokens.</summary>
    public string IdToToken(int id) => _idToToken[CheckId(id)]!;

    public bool IsSpecial(int id) => _isSpecial[CheckId(id)];

    /// <summary>The bytes an id decodes to (see <see cref="Decode"/>); worked out on first use and kept.</summary>
    public ReadOnlySpan<byte> BytesOf(int id) => _idToBytes[CheckId(id)] ??= TokenBytes(_idToToken[id]!);

    private int CheckId(int id)
    {
        if (id < 0 || id >= VocabSize)
            throw new TokenizerException($"token id {id} is outside the vocabulary (size {VocabSize})");
        if (_idToToken[id] is null)
            throw new TokenizerException($"token id {id} is not assigned in the vocabulary (size {VocabSize})");
        return id;
    }

    /// <summary>
    /// HF's ByteLevel decoder: a token whose every character is in the byte-level alphabet stands for those bytes;
    /// any other token (an added token with characters outside it) stands for its own UTF-8.
    /// </summary>
    private static byte[] TokenBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
            if (!ByteLevelAlphabet.TryDecode(token[i], out bytes[i]))
                return Encoding.UTF8.GetBytes(token);
        return bytes;
    }
}
