namespace Qwen2VL.Runtime;

/// <summary>Refuses an output path that is one of the run's own inputs: writing it would destroy what is being read.</summary>
public static class OutputPath
{
    /// <summary>Throws when <paramref name="output"/> names (through links) the same file as any of <paramref name="inputs"/>.</summary>
    public static void CheckNotAnInput(string output, string flag, params (string Path, string What)[] inputs)
    {
        string target = Resolve(output);
        foreach (var (path, what) in inputs)
            if (string.Equals(target, Resolve(path), StringComparison.Ordinal))
                throw new ModelException($"{flag} {output} is {what}; writing it would destroy it: choose another {flag}");
    }

    /// <summary>The full path with every symbolic link resolved (a missing file: its full path).</summary>
    private static string Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            var info = new FileInfo(full);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } final)
                full = final.FullName;
            string? dir = Path.GetDirectoryName(full);
            if (dir is not null && Directory.Exists(dir))
            {
                var dirInfo = new DirectoryInfo(dir);
                if (dirInfo.ResolveLinkTarget(returnFinalTarget: true) is { } realDir)
                    full = Path.Combine(realDir.FullName, Path.GetFileName(full));
            }
        }
        catch (IOException)
        {
            // A link loop: compare by the path as given.
        }
        return full;
    }
}
