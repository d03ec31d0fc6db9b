using System.Runtime.CompilerServices;
using Qwen2VL.Model.Text;

namespace Qwen2VL.Model.Serving;

/// <summary>
/// The text of one answer as it is generated: ids from a <see cref="BatchSequence"/> decoded (special tokens
/// skipped, UTF-8 characters split over tokens held back until complete) and cut at the first stop string. Text that
/// could still turn into a stop string is held back until it cannot, so a stop string never reaches the reader.
/// </summary>
public sealed class ChatStream
{
    private readonly BatchSequence _sequence;
    private readonly TokenStreamDecoder _decoder;
    private readonly IReadOnlyList<string> _stop;

    internal ChatStream(BatchSequence sequence, Qwen2Tokenizer tokenizer, IReadOnlyList<string> stop)
    {
        _sequence = sequence;
        _decoder = new TokenStreamDecoder(tokenizer, skipSpecialTokens: true);
        _stop = stop.Where(s => s.Length > 0).ToList();
    }

    public int PromptTokens => _sequence.PromptTokens;

    /// <summary>Tokens generated so far (end ids excluded).</summary>
    public int CompletionTokens { get; private set; }

    /// <summary>Why the answer ended ("stop" for an end id or a stop string, "length" for the token budget); null while running.</summary>
    public string? FinishReason { get; private set; }

    /// <summary>Stops generation (the slot is freed at the next step boundary).</summary>
    public void Cancel() => _sequence.Stop();

    /// <summary>
    /// The answer's text in pieces as they become final. Cancelling <paramref name="cancel"/> (a client that went away)
    /// stops the sequence, so its slot goes to the next request.
    /// </summary>
    public async IAsyncEnumerable<string> ReadAsync([EnumeratorCancellation] CancellationToken cancel = default)
    {
        using var registration = cancel.Register(_sequence.Stop);
        var text = new System.Text.StringBuilder();
        int sent = 0;
        await foreach (var id in _sequence.Tokens.ReadAllAsync(cancel).ConfigureAwait(false))
        {
            CompletionTokens++;
            text.Append(_decoder.Add(checked((int)id)));
            var (ready, stopped) = Split(text.ToString(), sent, final: false);
            if (ready.Length > 0) { sent += ready.Length; yield return ready; }
            if (stopped)
            {
                _sequence.Stop();
                FinishReason = "stop";
                yield break;
            }
        }
        text.Append(_decoder.Flush());
        var (rest, hitStop) = Split(text.ToString(), sent, final: true);
        if (rest.Length > 0) yield return rest;
        var reason = await _sequence.Completion.ConfigureAwait(false);
        FinishReason = hitStop || reason != Serving.FinishReason.Length ? "stop" : "length";
    }

    /// <summary>
    /// The whole answer at once. Without stop strings the reader sleeps until the sequence ends instead of waking
    /// for every token (which, with many sequences in flight, takes CPU from the decode steps).
    /// </summary>
    public async Task<string> ReadToEndAsync(CancellationToken cancel = default)
    {
        if (_stop.Count > 0)
        {
            var all = new System.Text.StringBuilder();
            await foreach (var piece in ReadAsync(cancel).ConfigureAwait(false)) all.Append(piece);
            return all.ToString();
        }
        using var registration = cancel.Register(_sequence.Stop);
        var reason = await _sequence.Completion.WaitAsync(cancel).ConfigureAwait(false);
        var text = new System.Text.StringBuilder();
        while (_sequence.Tokens.TryRead(out long id))
        {
            CompletionTokens++;
            text.Append(_decoder.Add(checked((int)id)));
        }
        text.Append(_decoder.Flush());
        FinishReason = reason == Serving.FinishReason.Length ? "length" : "stop";
        return text.ToString();
    }

    /// <summary>
    /// What of <paramref name="text"/> past <paramref name="sent"/> can go out now: everything before the first stop
    /// string (then stopped), else everything but a tail that begins some stop string (all of it when final).
    /// </summary>
    private (string Ready, bool Stopped) Split(string text, int sent, bool final)
    {
        int cut = -1;
        foreach (var s in _stop)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) return (cut > sent ? text[sent..cut] : "", true);
        int end = text.Length;
        if (!final)
            foreach (var s in _stop)
                for (int n = Math.Min(s.Length - 1, text.Length - sent); n > 0; n--)
                    if (string.CompareOrdinal(text, text.Length - n, s, 0, n) == 0)
                    {
                        end = Math.Min(end, text.Length - n);
                        break;
                    }
        return (text[sent..end], false);
    }
}
