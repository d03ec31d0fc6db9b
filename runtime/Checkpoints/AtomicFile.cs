using System.Diagnostics;
using System.Globalization;

namespace Qwen2VL.Runtime;

/// <summary>
/// Whole-file writes that never leave a half-written file: the bytes go to <c>NAME.tmp-PID-RANDOM</c> beside the
/// target, are flushed to disk and renamed over it. A writer killed half-way leaves its temp file; the next write to
/// the same place removes the temp files of writers that are no longer running (the pid in the name says whose
/// they are, so a live writer's temp file is never touched).
/// </summary>
public static class AtomicFile
{
    /// <summary>A fresh temp path beside <paramref name="path"/>, after removing dead writers' leftovers there.</summary>
    public static string TempPathFor(string path)
    {
        RemoveStaleTemps(path);
        return $"{path}.tmp-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid().ToString("N")[..8]}";
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        string temp = TempPathFor(path);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Deletes <c>NAME.tmp-PID-*</c> beside <paramref name="path"/> whose process is gone.</summary>
    public static void RemoveStaleTemps(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is null || !Directory.Exists(dir)) return;
        string prefix = Path.GetFileName(path) + ".tmp-";
        foreach (string temp in Directory.EnumerateFiles(dir, prefix + "*"))
        {
            string rest = Path.GetFileName(temp)[prefix.Length..];
            int dash = rest.IndexOf('-');
            if (dash <= 0 || !int.TryParse(rest[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (pid == Environment.ProcessId || IsRunning(pid)) continue;
            try { File.Delete(temp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }
}
