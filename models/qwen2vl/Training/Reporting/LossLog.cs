using System.Globalization;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training.Reporting;

/// <summary>One optimizer step as the loss log records it; <see cref="GradNorm"/> is empty when not measured.</summary>
public sealed record LossLogRow(long Step, int Epoch, double Loss, double LearningRate, double TokensPerSecond, double? GradNorm);

/// <summary>
/// The loss log, a CSV file with one row per optimizer step:
/// <c>step,epoch,loss,learning_rate,tokens_per_second,grad_norm</c>. Each row is flushed as it is appended, so a
/// killed run loses nothing it logged. Resuming from the checkpoint of step S drops the rows after S (the killed
/// run logged steps it never saved) so the log again reads as one uninterrupted run.
/// </summary>
public sealed class LossLog : IDisposable
{
    public const string Header = "step,epoch,loss,learning_rate,tokens_per_second,grad_norm";

    private readonly StreamWriter _writer;
    private readonly string _path;

    private LossLog(string path, StreamWriter writer)
    {
        _path = path;
        _writer = writer;
    }

    /// <summary>Starts a fresh log (an existing file is replaced).</summary>
    public static LossLog Create(string path)
    {
        ReplaceAtomically(path, []);
        return OpenForAppend(path);
    }

    /// <summary>
    /// Continues the log of a run resumed from step <paramref name="resumedStep"/>: rows after it, and a last line
    /// cut short by a crash, are dropped (atomically: the kept rows are rewritten to a temp file that replaces the
    /// log). A missing file starts a fresh log.
    /// </summary>
    public static LossLog Resume(string path, long resumedStep)
    {
        if (!File.Exists(path)) return Create(path);
        ReplaceAtomically(path, Read(path, allowTornLastLine: true).Where(r => r.Step <= resumedStep).ToList());
        return OpenForAppend(path);
    }

    public void Append(LossLogRow row)
    {
        _writer.Write(Format(row));
        _writer.Write('\n');
        _writer.Flush(); // to the OS on every step: a process crash keeps every row written so far
    }

    public void Dispose() => _writer.Dispose();

    /// <summary>Reads every row; a malformed line is a one-line <see cref="ModelException"/> naming file and line.</summary>
    public static IReadOnlyList<LossLogRow> Read(string path) => Read(path, allowTornLastLine: false);

    private static List<LossLogRow> Read(string path, bool allowTornLastLine)
    {
        string file = Path.GetFileName(path);
        if (!File.Exists(path)) throw new ModelException($"{file}: loss log not found ({path})");
        string text = File.ReadAllText(path);
        bool complete = text.EndsWith('\n');
        string[] lines = text.Split('\n');
        int count = lines.Length - 1 + (complete ? 0 : 1); // the piece after the last '\n' is empty or torn
        if (count == 0 || lines[0].TrimEnd('\r') != Header)
            throw new ModelException($"{file}: line 1 is not the loss log header '{Header}'");
        var rows = new List<LossLogRow>();
        for (int i = 1; i < count; i++)
        {
            bool last = i == count - 1;
            if (last && !complete && allowTornLastLine) break;
            rows.Add(Parse(lines[i].TrimEnd('\r')) ?? throw new ModelException($"{file}: line {i + 1} is not a loss log row: '{Truncate(lines[i])}'"));
        }
        return rows;
    }

    private static string Format(LossLogRow row) => string.Join(',',
        row.Step.ToString(CultureInfo.InvariantCulture),
        row.Epoch.ToString(CultureInfo.InvariantCulture),
        row.Loss.ToString("R", CultureInfo.InvariantCulture),
        row.LearningRate.ToString("R", CultureInfo.InvariantCulture),
        row.TokensPerSecond.ToString("F1", CultureInfo.InvariantCulture),
        row.GradNorm?.ToString("R", CultureInfo.InvariantCulture) ?? "");

    private static LossLogRow? Parse(string line)
    {
        string[] f = line.Split(',');
        const NumberStyles real = NumberStyles.Float;
        CultureInfo c = CultureInfo.InvariantCulture;
        if (f.Length != 6
            || !long.TryParse(f[0], NumberStyles.Integer, c, out long step)
            || !int.TryParse(f[1], NumberStyles.Integer, c, out int epoch)
            || !double.TryParse(f[2], real, c, out double loss)
            || !double.TryParse(f[3], real, c, out double lr)
            || !double.TryParse(f[4], real, c, out double tps))
            return null;
        double? norm = null;
        if (f[5].Length > 0)
        {
            if (!double.TryParse(f[5], real, c, out double n)) return null;
            norm = n;
        }
        return new LossLogRow(step, epoch, loss, lr, tps, norm);
    }

    private static void ReplaceAtomically(string path, IReadOnlyList<LossLogRow> rows)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(Header + "\n");
                foreach (LossLogRow row in rows) writer.Write(Format(row) + "\n");
                writer.Flush();
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

    private static LossLog OpenForAppend(string path) =>
        new(path, new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)));

    private static string Truncate(string line) => line.Length > 60 ? line[..60] + "…" : line;

    public override string ToString() => _path;
}
