using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>
/// Opens the files a user hands in (weights, configs, tokenizers, images, data) the one safe way: symbolic links are
/// followed (a Hugging Face cache snapshot is a folder of links into <c>blobs/</c>), anything that is not a regular
/// file is refused before it is opened (opening a FIFO blocks forever; <c>/dev/zero</c> never ends), and sizes come
/// from the opened handle, never from the link. Reads are bounded by a limit the caller names.
/// </summary>
public static class InputFile
{
    /// <summary>The largest JSON or text file read whole into memory (tokenizer.json of Qwen2-VL is 7 MB).</summary>
    public const long DefaultMaxTextBytes = 256L << 20;

    /// <summary>Opens <paramref name="path"/> for reading after checking that it (its link target) is a regular file.</summary>
    public static FileStream OpenRead(string path, string label)
    {
        RequireRegular(path, label);
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelException($"{label}: cannot open ({e.Message})", e);
        }
    }

    /// <summary>The whole file, refused when larger than <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadAllBytes(string path, string label, long maxBytes = DefaultMaxTextBytes)
    {
        using var stream = OpenRead(path, label);
        long length = stream.Length; // from the handle: the target's size, not the link's
        if (length > maxBytes)
            throw new ModelException($"{label}: {length} bytes, more than the {maxBytes}-byte limit for this kind of file");
        var bytes = new byte[length];
        try
        {
            stream.ReadExactly(bytes);
        }
        catch (EndOfStreamException e)
        {
            throw new ModelException($"{label}: the file shrank while it was read", e);
        }
        return bytes;
    }

    /// <summary>
    /// Throws unless <paramref name="path"/> names (through any links) an existing regular file: a missing file,
    /// a folder, a FIFO, a socket or a device is a one-line <see cref="ModelException"/>.
    /// </summary>
    public static void RequireRegular(string path, string label)
    {
        if (Directory.Exists(path))
            throw new ModelException($"{label}: is a folder, expected a file ({path})");
        if (!File.Exists(path))
        {
            // File.Exists is false for a dangling link too; say which.
            var info = new FileInfo(path);
            if (info.LinkTarget is { } target)
                throw new ModelException($"{label}: is a link to '{target}', which does not exist ({path})");
            throw new ModelException($"{label}: file not found ({path})");
        }
        if (FileKind(path) is { } kind && kind != "regular file")
            throw new ModelException($"{label}: is a {kind}, not a regular file ({path})");
    }

    /// <summary>The kind of file <paramref name="path"/> resolves to ("regular file", "FIFO", …), or null where unknown.</summary>
    internal static string? FileKind(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        // statx has one layout on every Linux architecture (unlike struct stat); AT_FDCWD, follow links.
        Span<byte> buffer = stackalloc byte[256];
        int rc;
        try
        {
            unsafe
            {
                fixed (byte* p = buffer) rc = Statx(-100, path, 0, StatxType, p);
            }
        }
        catch (EntryPointNotFoundException)
        {
            return null; // a C library without statx (glibc < 2.28): the open itself is the check
        }
        if (rc != 0) return null;
        ushort mode = BitConverter.ToUInt16(buffer[28..30]);
        return (mode & 0xF000) switch
        {
            0x8000 => "regular file",
            0x4000 => "folder",
            0x1000 => "FIFO",
            0x2000 => "character device",
            0x6000 => "block device",
            0xC000 => "socket",
            _ => "special file",
        };
    }

    private const uint StatxType = 0x1;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern unsafe int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);
}
