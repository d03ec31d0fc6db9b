using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>
/// Finds one native library (the CUDA driver, cuBLAS, NCCL…) among a list of candidates: first the bare file names,
/// which the system loader looks up on its own path (<c>LD_LIBRARY_PATH</c>, <c>ld.so.cache</c>), then each
/// directory in order, trying there every file name that exists. Directory-major order keeps "the usual places"
/// meaningful (an explicit override before a CUDA toolkit before PyTorch's wheels); within a place the file names
/// are tried newest version first.
/// </summary>
public sealed class NativeLibrarySearch
{
    /// <param name="what">How a user names the library in a message ("cuBLAS").</param>
    /// <param name="fileNames">File names, preferred first ("libcublas.so.13", "libcublas.so.12").</param>
    /// <param name="directories">Places to look after the loader's own path, in order; missing ones are skipped.</param>
    /// <param name="hint">What to do when nothing loads ("install the NVIDIA driver or use --device cpu").</param>
    public NativeLibrarySearch(string what, IReadOnlyList<string> fileNames, IReadOnlyList<string> directories, string hint)
    {
        What = what;
        FileNames = fileNames;
        Directories = directories;
        Hint = hint;
    }

    public string What { get; }
    public IReadOnlyList<string> FileNames { get; }
    public IReadOnlyList<string> Directories { get; }
    public string Hint { get; }

    /// <summary>
    /// Everything <see cref="Load"/> tries, in order: the bare names, then <c>directory/name</c> for each file that exists.
    /// </summary>
    public IReadOnlyList<string> Candidates()
    {
        var candidates = new List<string>(FileNames);
        foreach (string directory in Directories.Distinct())
            foreach (string name in FileNames)
            {
                string path = Path.Combine(directory, name);
                if (File.Exists(path)) candidates.Add(path);
            }
        return candidates;
    }

    /// <summary>
    /// Loads the first candidate that loads. <paramref name="load"/> (for tests) stands in for the system loader: it
    /// returns a handle or throws <see cref="DllNotFoundException"/> / <see cref="BadImageFormatException"/>.
    /// Throws <see cref="NativeLibraryNotFoundException"/>, one line naming every name and place tried and, when a file
    /// was there but would not load, the loader's reason (a missing dependency, a wrong architecture).
    /// </summary>
    public LoadedNativeLibrary Load(Func<string, IntPtr>? load = null)
    {
        load ??= NativeLibrary.Load;
        string? firstFailure = null;
        foreach (string candidate in Candidates())
        {
            try
            {
                IntPtr handle = load(candidate);
                if (handle != IntPtr.Zero) return new LoadedNativeLibrary(What, candidate, handle);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                // A bare name the loader cannot find is the ordinary miss; a file that exists and fails is the news.
                if (firstFailure is null && Path.IsPathRooted(candidate))
                    firstFailure = $"; {candidate} exists but did not load ({OneLine(e.Message)})";
            }
        }
        throw new NativeLibraryNotFoundException(NotFoundMessage(firstFailure));
    }

    /// <summary>As <see cref="Load"/>, without throwing: null and the message when nothing loads.</summary>
    public LoadedNativeLibrary? TryLoad(out string? error, Func<string, IntPtr>? load = null)
    {
        try
        {
            error = null;
            return Load(load);
        }
        catch (NativeLibraryNotFoundException e)
        {
            error = e.Message;
            return null;
        }
    }

    private string NotFoundMessage(string? firstFailure)
    {
        string places = Directories.Count == 0 ? "" : " and in " + string.Join(", ", Directories.Distinct());
        return $"{What} not found: tried {string.Join(", ", FileNames)} on the system loader's path{places}{firstFailure}; {Hint}";
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries)).Trim();
}

/// <summary>A native library that loaded: the candidate that worked (a bare name or a path) and its handle.</summary>
public sealed record LoadedNativeLibrary(string What, string Path, IntPtr Handle);

/// <summary>No candidate of a <see cref="NativeLibrarySearch"/> loaded; the message names what was tried.</summary>
public sealed class NativeLibraryNotFoundException : ModelException
{
    public NativeLibraryNotFoundException(string message) : base(message) { }
}
