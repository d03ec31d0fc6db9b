namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// Writes a folder of files all at once: everything goes into a hidden sibling folder that is renamed into place
/// at the end, so a failure leaves either the previous folder or nothing, never a half-written one.
/// </summary>
internal static class AtomicDirectory
{
    /// <param name="files">Relative '/'-separated paths and their bytes.</param>
    /// <param name="marker">A file a previous output has; an existing non-empty folder without it is refused, not replaced.</param>
    public static void Write(string directory, IReadOnlyDictionary<string, byte[]> files, string marker)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        var parent = Path.GetDirectoryName(full) ?? throw new AotException($"cannot write the output to the root folder {full}");
        var name = Path.GetFileName(full);
        if (File.Exists(full)) throw new AotException($"output {directory} is a file, not a folder");
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any() && !File.Exists(Path.Combine(full, marker)))
            throw new AotException($"output folder {directory} is not empty and holds no {marker}; give a new or empty folder");

        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{name}.tmp-{Guid.NewGuid():N}");
        var old = Path.Combine(parent, $".{name}.old-{Guid.NewGuid():N}");
        try
        {
            foreach (var (relative, bytes) in files)
            {
                var path = Path.Combine(temp, relative.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllBytes(path, bytes);
            }
            if (!Directory.Exists(full))
            {
                Directory.Move(temp, full);
                return;
            }
            Directory.Move(full, old);
            try
            {
                Directory.Move(temp, full);
            }
            catch
            {
                Directory.Move(old, full); // put the previous output back
                throw;
            }
            try { Directory.Delete(old, recursive: true); }
            catch (IOException) { } // the new output is complete; a leftover hidden copy of the old one is harmless
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AotException($"cannot write output folder {directory}: {e.Message}", e);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }
}
