using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// fsync of a directory, so a rename inside it survives a power loss (file contents are flushed separately).
/// .NET has no API for it; on Linux and macOS it is open(O_RDONLY) + fsync through libc. Best effort: elsewhere,
/// or when the call fails, it does nothing, since a process crash is covered by the renames alone.
/// </summary>
internal static partial class DirectorySync
{
    /// <summary>True when the directory was opened and fsynced.</summary>
    public static bool Flush(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return false;
        try
        {
            int fd = Open(directory, 0 /* O_RDONLY */);
            if (fd < 0) return false;
            bool synced = Fsync(fd) == 0;
            _ = Close(fd);
            return synced;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false; // no libc by that name (an unusual distribution): durability falls back to the file flushes
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
