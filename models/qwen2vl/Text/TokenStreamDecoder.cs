using System.Text;

namespace Qwen2VL.Model.Text;

/// <summary>
/// Decodes generated ids one at a time. A token can end in the middle of a UTF-8 character (Qwen2 splits many CJK
/// characters and emoji over two or three byte tokens), so the bytes of an unfinished character are held back
/// until the tokens that complete it arrive. The texts returned by <see cref="Add"/> and then <see cref="Flush"/>
/// join to exactly <see cref="Qwen2Tokenizer.Decode"/> of all ids.
/// </summary>
/// <remarks>
/// Why cutting before a held-back lead byte is safe: a UTF-8 decoder that replaces invalid input with U+FFFD never
/// lets a sequence run across a lead byte, so what comes before it decodes the same alone as it does followed by
/// more bytes.
/// </remarks>
public sealed class TokenStreamDecoder(Qwen2Tokenizer tokenizer, bool skipSpecialTokens = false)
{
    private readonly List<byte> _pending = [];

    /// <summary>Appends one id; returns the text it completes (empty while a character is still unfinished).</summary>
    public string Add(int id)
    {
        var bytes = tokenizer.BytesOf(id);
        if (skipSpecialTokens && tokenizer.IsSpecial(id)) return "";
        foreach (var b in bytes) _pending.Add(b);
        var keep = IncompleteTailLength(_pending);
        var ready = _pending.Count - keep;
        if (ready == 0) return "";
        var text = Encoding.UTF8.GetString(_pending.GetRange(0, ready).ToArray());
        _pending.RemoveRange(0, ready);
        return text;
    }

    /// <summary>Ends the stream: an unfinished character left over becomes U+FFFD.</summary>
    public string Flush()
    {
        var text = Encoding.UTF8.GetString(_pending.ToArray());
        _pending.Clear();
        return text;
    }

    /// <summary>
    /// Length of the trailing bytes that begin a valid UTF-8 sequence but do not finish it (0 to 3). Bytes that can
    /// never become valid are not held back: they decode to U+FFFD at once.
    /// </summary>
    private static int IncompleteTailLength(List<byte> bytes)
    {
        for (var back = 1; back <= Math.Min(3, bytes.Count); back++)
        {
            var lead = bytes[^back];
            if (lead < 0x80) return 0;                 // ASCII: everything before and at it is complete
            if (lead < 0xC0) continue;                 // continuation byte: look further back for its lead
            var need = lead switch { >= 0xC2 and <= 0xDF => 2, >= 0xE0 and <= 0xEF => 3, >= 0xF0 and <= 0xF4 => 4, _ => 0 };
            if (need <= back) return 0;                // complete (or an invalid lead): nothing to wait for
            // The continuation bytes seen so far must be allowed after this lead (E0 A0.., ED ..9F, F0 90.., F4 ..8F).
            for (var k = 1; k < back; k++)
                if (!ContinuationAllowed(lead, k, bytes[^(back - k)])) return 0;
            return back;
        }
        return 0;
    }

    private static bool ContinuationAllowed(byte lead, int position, byte b)
    {
        if (position == 1)
        {
            return lead switch
            {
                0xE0 => b is >= 0xA0 and <= 0xBF,
                0xED => b is >= 0x80 and <= 0x9F,
                0xF0 => b is >= 0x90 and <= 0xBF,
                0xF4 => b is >= 0x80 and <= 0x8F,
                _ => b is >= 0x80 and <= 0xBF,
            };
        }
        return b is >= 0x80 and <= 0xBF;
    }
}
