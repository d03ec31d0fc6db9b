using System.Text;

namespace Qwen2VL.Model.Text;

/// <summary>
/// Trains a small byte-level BPE tokenizer of the Qwen2 kind for small models (the fixture model has vocab 512 and
/// no tokenizer of its own). Same pipeline as the real one: added tokens cut out of the raw text, NFC, the Qwen2
/// split, then BPE over the UTF-8 bytes in GPT-2's byte-level alphabet. Ids 0..255 are the 256 single bytes in
/// GPT-2 order, so any text can be encoded; each merge adds the next id.
/// </summary>
/// <remarks>
/// Classic BPE training (Sennrich et al. 2016): count adjacent symbol pairs over the distinct pieces weighted by
/// their frequency, merge the most frequent pair everywhere, repeat. Ties go to the pair whose (left, right)
/// strings sort first (ordinal), so the output is a pure function of the corpus, vocab size and special tokens.
/// Counting is recomputed after each merge: quadratic, but the corpora this is meant for are a few kilobytes.
/// </remarks>
public static class TinyBpeTrainer
{
    /// <summary>
    /// Learns <paramref name="vocabSize"/> regular tokens (ids 0..vocabSize-1) and returns the <c>tokenizer.json</c>
    /// text, with <paramref name="specialTokens"/> as added special tokens at their given ids (each outside 0..vocabSize-1).
    /// </summary>
    public static string Train(IEnumerable<string> corpus, int vocabSize, IReadOnlyDictionary<string, int> specialTokens)
    {
        CheckArguments(vocabSize, specialTokens);
        var words = CountPieces(corpus, specialTokens);

        var vocab = ByteLevelAlphabet.VocabularyOrder.Select(b => ByteLevelAlphabet.Encode(b).ToString()).ToList();
        var known = new HashSet<string>(vocab, StringComparer.Ordinal);
        var merges = new List<(string Left, string Right)>();
        while (vocab.Count < vocabSize)
        {
            var best = MostFrequentPair(words)
                ?? throw new TokenizerException(
                    $"the corpus is too small for vocab {vocabSize}: no pair left to merge after {vocab.Count} tokens");
            merges.Add(best);
            var merged = best.Left + best.Right;
            if (known.Add(merged)) vocab.Add(merged);
            foreach (var word in words) word.Merge(best.Left, best.Right, merged);
        }

        var added = specialTokens.OrderBy(t => t.Value).Select(t => new AddedToken(t.Value, t.Key, Special: true)).ToList();
        return TokenizerJsonWriter.Write(vocab, merges, added);
    }

    /// <summary><see cref="Train"/>, then writes the file atomically (temp file, then move).</summary>
    public static void TrainToFile(IEnumerable<string> corpus, int vocabSize, IReadOnlyDictionary<string, int> specialTokens, string path)
    {
        var json = Train(corpus, vocabSize, specialTokens);
        var temp = path + ".tmp";
        File.WriteAllText(temp, json, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        File.Move(temp, path, overwrite: true);
    }

    private static void CheckArguments(int vocabSize, IReadOnlyDictionary<string, int> specialTokens)
    {
        if (vocabSize < 256)
            throw new TokenizerException($"vocab size {vocabSize} is below 256, the number of single-byte tokens");
        foreach (var (token, id) in specialTokens)
        {
            if (string.IsNullOrEmpty(token)) throw new TokenizerException("a special token is empty");
            if (id >= 0 && id < vocabSize)
                throw new TokenizerException($"special token {token} has id {id}, inside the regular ids 0..{vocabSize - 1}");
            if (id < 0) throw new TokenizerException($"special token {token} has negative id {id}");
        }
        var duplicate = specialTokens.GroupBy(t => t.Value).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new TokenizerException($"special tokens {string.Join(", ", duplicate.Select(t => t.Key))} share id {duplicate.Key}");
    }

    /// <summary>The distinct pre-tokenized pieces of the corpus (special tokens cut out), as byte-level symbols.</summary>
    private static List<Word> CountPieces(IEnumerable<string> corpus, IReadOnlyDictionary<string, int> specialTokens)
    {
        var matcher = new AddedTokenMatcher(specialTokens);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in corpus)
        {
            foreach (var (start, length, id) in matcher.Split(text))
            {
                if (id >= 0) continue;
                var plain = NfcNormalizer.Instance.Normalize(text.AsSpan(start, length));
                foreach (var (offset, pieceLength) in Qwen2PreTokenizer.Split(plain))
                {
                    var piece = ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(plain.Substring(offset, pieceLength)));
                    counts[piece] = counts.GetValueOrDefault(piece) + 1;
                }
            }
        }
        return counts.OrderBy(c => c.Key, StringComparer.Ordinal)
            .Select(c => new Word(c.Key.Select(ch => ch.ToString()).ToList(), c.Value))
            .ToList();
    }

    private static (string Left, string Right)? MostFrequentPair(List<Word> words)
    {
        var pairCounts = new Dictionary<(string, string), long>();
        foreach (var word in words)
            for (var i = 0; i + 1 < word.Symbols.Count; i++)
            {
                var pair = (word.Symbols[i], word.Symbols[i + 1]);
                pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + word.Count;
            }
        (string, string)? best = null;
        long bestCount = 0;
        foreach (var (pair, count) in pairCounts)
        {
            if (count > bestCount || (count == bestCount && best is { } b && Compare(pair, b) < 0))
            {
                best = pair;
                bestCount = count;
            }
        }
        return best;
    }

    private static int Compare((string Left, string Right) x, (string Left, string Right) y)
    {
        var c = string.CompareOrdinal(x.Left, y.Left);
        return c != 0 ? c : string.CompareOrdinal(x.Right, y.Right);
    }

    /// <summary>A distinct piece of the corpus: its current symbols and how often it occurs.</summary>
    private sealed class Word(List<string> symbols, int count)
    {
        public List<string> Symbols { get; } = symbols;

        public int Count { get; } = count;

        /// <summary>Replaces each (left, right) neighbour pair, scanning left to right, by the merged symbol.</summary>
        public void Merge(string left, string right, string merged)
        {
            for (var i = 0; i + 1 < Symbols.Count; i++)
            {
                if (Symbols[i] != left || Symbols[i + 1] != right) continue;
                Symbols[i] = merged;
                Symbols.RemoveAt(i + 1);
            }
        }
    }
}
