using System.Diagnostics;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Generation;

/// <summary>Why an answer ended: an end-of-turn id, the token limit, or a full context.</summary>
public enum FinishReason { Stop, Length, Context }

/// <summary>One answer: its text and ids (without the closing end-of-turn id), how it ended and what it cost.</summary>
public sealed record ChatAnswer(string Text, IReadOnlyList<long> Tokens, FinishReason Finish, int PromptTokens,
    TimeSpan PrefillTime, TimeSpan DecodeTime)
{
    /// <summary>Generated tokens per second of decoding (the first token comes from the prefill and is not counted).</summary>
    public double DecodeTokensPerSecond => Tokens.Count > 1 && DecodeTime > TimeSpan.Zero ? (Tokens.Count - 1) / DecodeTime.TotalSeconds : 0;
}

/// <summary>
/// A multi-turn chat on one model with its KV cache kept across turns: each answer runs only the text and images that
/// are new since the last one (the previous answer's end, the new user turn, the generation prompt) on top of the
/// cached positions, instead of the whole conversation again. The cache holds exactly the tokens of
/// <see cref="Conversation.Render"/> up to the last answer (the answer as generated), so the logits are those of the
/// whole conversation run at once (tested). Positions continue after the cache: a new segment's M-RoPE positions are
/// its own, shifted to start where the cached ones end.
/// </summary>
public sealed class ChatSession : IDisposable
{
    private readonly Qwen2VLModel _model;
    private readonly Qwen2Tokenizer _tokenizer;
    private readonly ImageProcessor _processor;
    private readonly List<long> _cachedIds = [];
    private DecoderCache? _cache;
    private int _cachedTurns;        // turns of Conversation whose tokens are in the cache
    private long _nextPosition;      // M-RoPE position of the next cached token (all three axes)

    /// <param name="contextLength">Positions the KV cache holds for the whole conversation; null sizes it for each
    /// answer (the conversation so far plus the new tokens), re-running the conversation when it outgrows it.</param>
    public ChatSession(Qwen2VLModel model, Qwen2Tokenizer tokenizer, ImageProcessor processor, int? contextLength = null)
    {
        if (contextLength is < 2) throw new ModelException($"the context length must be ≥ 2, got {contextLength}");
        _model = model;
        _tokenizer = tokenizer;
        _processor = processor;
        ContextLength = contextLength;
    }

    public Conversation Conversation { get; } = new();

    /// <summary>Called with the prompt's token count (cached and new) and the new-token budget before any work; throws to refuse.</summary>
    public Action<int, int>? PromptCheck { get; init; }

    /// <summary>Positions the KV cache holds: prompt, images and answers of every turn together (null: sized per answer).</summary>
    public int? ContextLength { get; }

    /// <summary>Ids in the KV cache, in order (the conversation so far as the model has seen it).</summary>
    public IReadOnlyList<long> CachedIds => _cachedIds;

    /// <summary>Forgets the conversation and its cache; the system prompt stays.</summary>
    public void Reset()
    {
        Conversation.Clear();
        _cache?.Dispose();
        _cache = null;
        _cachedIds.Clear();
        _cachedTurns = 0;
        _nextPosition = 0;
    }

    /// <summary>
    /// Answers the conversation's last turn (a user turn), streaming each new id to <paramref name="onToken"/>, and
    /// appends the answer as an assistant turn. The eos ids of <paramref name="options"/> end the answer; the
    /// sampling settings apply as in <see cref="TextGenerator"/>, the repetition penalty over every cached id.
    /// </summary>
    public ChatAnswer Answer(GenerationOptions options, Action<long>? onToken = null)
    {
        var turns = Conversation.Turns;
        if (turns.Count == 0 || turns[^1].Role != "user")
            throw new ModelException("there is no question to answer: the conversation must end with a user turn");
        var sampler = new TokenSampler(options.Sampling);
        var clock = Stopwatch.StartNew();

        // What the cache lacks: everything after a reset or an edit of cached turns, else only the new turns.
        bool continues = _cache is not null && _cachedTurns > 0 && _cachedTurns < turns.Count && turns[_cachedTurns - 1].Role == "assistant";
        var segment = continues
            ? Conversation.ContinuationInputs(_tokenizer, _processor, _cachedTurns)
            : Conversation.ToInputs(_tokenizer, _processor);
        if (continues && ContextLength is null && _cachedIds.Count + segment.Seq + options.MaxNewTokens + 1 > _cache!.Capacity)
        {
            continues = false;    // outgrown: run the whole conversation into a larger cache
            segment = Conversation.ToInputs(_tokenizer, _processor);
        }
        PromptCheck?.Invoke((continues ? _cachedIds.Count : 0) + segment.Seq, options.MaxNewTokens);
        if (!continues) DropCache();
        int capacity = _cache?.Capacity ?? ContextLength ?? segment.Seq + options.MaxNewTokens + 1;
        if (_cachedIds.Count + segment.Seq + 1 > capacity)
            throw new ModelException($"the conversation needs {_cachedIds.Count + segment.Seq + 1} positions but the context holds {capacity}: start over (/reset) or allow a longer context");
        _cache ??= _model.CreateCache(1, capacity);

        var embedded = _model.Embed(segment);
        var positions = embedded.PositionIds.Select(p => p + _nextPosition).ToArray();
        var logits = _model.DecodeWithCache(_cache, embedded.Embeddings, positions, Ones(segment.Seq), segment.Seq);
        _cachedIds.AddRange(segment.InputIds);
        _nextPosition += segment.Seq + embedded.RopeDeltas[0];
        var prefill = clock.Elapsed;

        var seen = new HashSet<long>(_cachedIds);
        var answer = new List<long>();
        var finish = FinishReason.Length;
        while (answer.Count < options.MaxNewTokens)
        {
            long next = sampler.Next(logits, seen);
            if (options.EosTokenIds.Contains(next)) { finish = FinishReason.Stop; break; }
            answer.Add(next);
            seen.Add(next);
            onToken?.Invoke(next);
            if (_cache.Length + 1 > _cache.Capacity) { finish = FinishReason.Context; break; }
            // The new token goes into the cache whether or not another follows, so the next turn continues after it.
            logits = _model.DecodeWithCache(_cache, [next], [_nextPosition, _nextPosition, _nextPosition], [1], 1);
            _cachedIds.Add(next);
            _nextPosition++;
        }
        var decode = clock.Elapsed - prefill;
        string text = _tokenizer.Decode(answer.Select(id => checked((int)id)).ToArray(), skipSpecialTokens: true);
        Conversation.AddAssistant(text);
        _cachedTurns = finish == FinishReason.Context ? 0 : Conversation.Turns.Count;   // a cut answer is not cached in full
        return new ChatAnswer(text, answer, finish, segment.Seq, prefill, decode);
    }

    private void DropCache()
    {
        _cache?.Dispose();
        _cache = null;
        _cachedIds.Clear();
        _cachedTurns = 0;
        _nextPosition = 0;
    }

    private static long[] Ones(int n) => Enumerable.Repeat(1L, n).ToArray();

    public void Dispose() => DropCache();
}
