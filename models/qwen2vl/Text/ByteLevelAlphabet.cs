namespace Qwen2VL.Model.Text;

/// <summary>
/// GPT-2's byte→unicode table used by byte-level BPE: every byte gets a printable character so a token is a plain
/// string. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes, in increasing
/// order, map to U+0100, U+0101, … (so space 0x20 becomes 'Ġ' U+0120 and '\n' becomes 'Ċ' U+010A).
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    /// <summary>
    /// The 256 bytes in the order GPT-2 and Qwen2 give them ids 0..255: the self-mapped printable bytes first,
    /// then the remapped ones.
    /// </summary>
    public static IReadOnlyList<byte> VocabularyOrder { get; } = BuildVocabularyOrder();

    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>The byte a byte-level character stands for; false for a character outside the 256-entry alphabet.</summary>
    public static bool TryDecode(char c, out byte b) => CharToByte.TryGetValue(c, out b);

    /// <summary>The byte-level string of some UTF-8 bytes: one character per byte.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
            chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    private static bool IsSelfMapped(int b) =>
        (b >= '!' && b <= '~') || (b >= '\u00A1' && b <= '\u00AC') || (b >= '\u00AE' && b <= '\u00FF');

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
            table[b] = IsSelfMapped(b) ? (char)b : (char)next++;
        return table;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (var b = 0; b < 256; b++)
            map[ByteToChar[b]] = (byte)b;
        return map;
    }

    private static byte[] BuildVocabularyOrder()
    {
        var order = new List<byte>(256);
        for (var b = 0; b < 256; b++)
            if (IsSelfMapped(b)) order.Add((byte)b);
        for (var b = 0; b < 256; b++)
            if (!IsSelfMapped(b)) order.Add((byte)b);
        return order.ToArray();
    }
}
