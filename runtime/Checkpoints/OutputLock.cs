using System.Diagnostics;

namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// One writer per output folder: <c>dir/.lock</c> held open with an exclusive advisory lock (.NET takes
/// <c>flock(LOCK_EX)</c> for <see cref="FileShare.None"/> on Unix) for as long as the run lives. The kernel drops the
/// lock when the process dies, however it dies, so a lock left by a killed run is never stale: the next run simply
/// takes it. <c>dir/.lock.holder</c> says who holds it (pid, host, start time), for the refusal message.
/// </summary>
public sealed class OutputLock : IDisposable
{
    public const string FileName = ".lock";
    public const string HolderFile = ".lock.holder";

    private readonly FileStream _stream;
    private readonly string _holderPath;

    private OutputLock(FileStream stream, string holderPath)
    {
        _stream = stream;
        _holderPath = holderPath;
    }

    /// <summary>Takes the lock of <paramref name="dir"/> (which must exist), or throws naming the run that holds it.</summary>
    public static OutputLock Acquire(string dir, string what = "training run")
    {
        string path = Path.Combine(dir, FileName);
        string holder = Path.Combine(dir, HolderFile);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            string who = File.Exists(holder) ? ReadHolder(holder) : "another process";
            throw new ModelException($"{dir}: another {what} is using this folder ({who}); wait for it or use another --out", e);
        }
        try
        {
            using var p = Process.GetCurrentProcess();
            File.WriteAllText(holder, $"pid {Environment.ProcessId} on {Environment.MachineName}, started {p.StartTime.ToUniversalTime():yyyy-MM-dd HH:mm:ss}Z\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The holder note only improves the message; the lock itself is held.
        }
        return new OutputLock(stream, holder);
    }

    private static string ReadHolder(string path)
    {
        try
        {
            string text = File.ReadAllText(path).Trim();
            return text.Length is > 0 and < 200 ? text : "another process";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "another process";
        }
    }

    /// <summary>
    /// Releases the lock. The holder note goes; the empty lock file stays (deleting it while another run waits to
    /// open it would let two runs lock two different files). A crash leaves both, harmless: the lock died with it.
    /// </summary>
    public void Dispose()
    {
        try { File.Delete(_holderPath); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        _stream.Dispose();
    }
}
