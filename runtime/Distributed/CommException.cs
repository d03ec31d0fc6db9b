namespace Qwen2VL.Runtime.Distributed;

/// <summary>
/// A problem with the parallel set-up the user asked for (a missing MPI or NCCL library, a world size that is not
/// tp·pp·dp, mismatched collectives between ranks). One line that names the problem; the CLI prints it and exits 2.
/// </summary>
public class CommException : ModelException
{
    public CommException(string message) : base(message) { }
    public CommException(string message, Exception inner) : base(message, inner) { }
}
