using System.Reflection;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// The one place where an exception becomes what the user sees: one line on stderr, never a stack trace, and an exit
/// code. Bad input of any kind (a <see cref="ModelException"/> — files, configs, checkpoints, images, tokenizers,
/// training data, kernels — or the file system refusing) is exit code 2 with the message; not enough memory is exit
/// code 2 too, since it is the input that asks for it. Anything else is a bug in this program: exit code 1 with the
/// exception's type and message and how to see the stack trace (<c>QVL_STACK_TRACE=1</c>).
/// </summary>
public static class CliErrors
{
    public const int UserError = 2;
    public const int InternalError = 1;
    public const int DeviceError = 1;
    public const int Cancelled = 130;

    /// <summary>Set to 1 to get the full exception of an internal error on stderr (for a bug report).</summary>
    public const string StackTraceVariable = "QVL_STACK_TRACE";

    /// <summary>The exit code and the one line (without a trailing newline) for <paramref name="e"/>.</summary>
    public static (int Code, string Line) Describe(Exception e)
    {
        e = Unwrap(e);
        return e switch
        {
            ModelException => (UserError, "error: " + OneLine(e.Message)),
            IOException or UnauthorizedAccessException => (UserError, "error: " + OneLine(e.Message)),
            OutOfMemoryException or InsufficientExecutionStackException =>
                (UserError, $"error: not enough memory for this input ({OneLine(e.Message)}); see the limits in the README"),
            OperationCanceledException => (Cancelled, "cancelled"),
            // The GPU or its driver failed mid-run (a kernel the JIT refused, a launch error): not bad input, but
            // still one line, with the driver's JIT log that ILGPU only traces.
            ILGPU.Runtime.Cuda.CudaException cuda => (DeviceError, "error: " + OneLine(PtxJitLog.Describe(cuda))),
            _ => (InternalError, $"internal error: {e.GetType().Name}: {OneLine(e.Message)} " +
                                 $"(a bug in qwen2vl; rerun with {StackTraceVariable}=1 for the stack trace)"),
        };
    }

    /// <summary>Writes the line for <paramref name="e"/> to <paramref name="error"/> and returns the exit code.</summary>
    public static int Report(Exception e, TextWriter error)
    {
        var (code, line) = Describe(e);
        try
        {
            error.WriteLine(line);
            if (code == InternalError && Environment.GetEnvironmentVariable(StackTraceVariable) == "1")
                error.WriteLine(e.ToString());
            error.Flush();
        }
        catch (Exception) when (code != 0)
        {
            // stderr itself is gone (a closed pipe): the exit code still says what happened.
        }
        return code;
    }

    /// <summary>The exception that says what happened, under the wrappers that only say where.</summary>
    private static Exception Unwrap(Exception e)
    {
        while (true)
        {
            switch (e)
            {
                case AggregateException { InnerExceptions.Count: 1 } a: e = a.InnerExceptions[0]; continue;
                case TargetInvocationException { InnerException: { } inner }: e = inner; continue;
                case TypeInitializationException { InnerException: { } inner }: e = inner; continue;
                default: return e;
            }
        }
    }

    /// <summary>A message on one line: line breaks become spaces, and an empty message says so.</summary>
    public static string OneLine(string? message)
    {
        var line = string.Join(' ', (message ?? "").Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return line.Length == 0 ? "(no message)" : line;
    }
}
