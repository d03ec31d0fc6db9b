using System.Diagnostics;
using ILGPU.Runtime.Cuda;

namespace Qwen2VL.Runtime;

/// <summary>
/// Keeps the driver's PTX JIT error log, which ILGPU 1.5.3 asks <c>cuModuleLoadDataEx</c> for and then writes only to
/// <see cref="Trace"/> ("PTX Kernel loading failed:" and the log on the next line) before throwing a bare
/// <see cref="CudaException"/> (CUDA_ERROR_INVALID_PTX, …). A trace listener remembers the log per thread, so the
/// exception a user sees can carry it (<see cref="Describe"/>, <see cref="KernelLoadException"/>).
/// </summary>
public static class PtxJitLog
{
    /// <summary>The line ILGPU writes right before the log (CudaKernel's constructor).</summary>
    public const string Marker = "PTX Kernel loading failed:";

    private static readonly Lock Gate = new();
    private static bool _installed;

    [ThreadStatic] private static bool _expectingLog;
    [ThreadStatic] private static string? _last;

    /// <summary>Adds the listener to <see cref="Trace.Listeners"/> once per process.</summary>
    public static void Install()
    {
        lock (Gate)
        {
            if (_installed) return;
            _installed = true;
            Trace.Listeners.Add(new Listener());
        }
    }

    /// <summary>The last JIT log written on this thread (and forgets it), or null.</summary>
    public static string? TakeLast()
    {
        string? log = _last;
        _last = null;
        return log;
    }

    /// <summary>
    /// One line for a CUDA error: the driver's error and, when the failure was a kernel load on this thread, the JIT log.
    /// </summary>
    public static string Describe(CudaException e)
    {
        string? log = TakeLast();
        return $"CUDA error {e.Error}: {OneLine(e.Message)}{(log is null ? "" : "; PTX JIT log: " + log)}";
    }

    private static void Record(string? line)
    {
        if (line is null) return;
        if (line == Marker)
        {
            _expectingLog = true;
            return;
        }
        if (!_expectingLog) return;
        _expectingLog = false;
        // ILGPU decodes the whole 1 KiB log buffer: the text ends in NULs.
        string log = OneLine(line.Replace('\0', ' '));
        _last = log.Length == 0 ? null : log;
    }

    internal static string OneLine(string text) =>
        string.Join(" | ", text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).Where(l => l.Length > 0));

    private sealed class Listener : TraceListener
    {
        public Listener() : base("qwen2vl-ptx-jit-log") { }

        public override void Write(string? message) { }

        public override void WriteLine(string? message) => Record(message);
    }
}

/// <summary>The driver refused a kernel (PTX JIT error, or another load failure); the message carries the JIT log.</summary>
public sealed class KernelLoadException : ModelException
{
    public KernelLoadException(string kernel, CudaException inner)
        : base($"loading kernel {kernel} on CUDA failed: {PtxJitLog.Describe(inner)}", inner) { }
}
