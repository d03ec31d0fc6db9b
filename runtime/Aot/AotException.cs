namespace Qwen2VL.Runtime.Aot;

/// <summary>Ahead-of-time compilation or loading failed on user input: an unknown architecture, a stale or malformed manifest, a bad output folder.</summary>
public class AotException : ModelException
{
    public AotException(string message) : base(message) { }
    public AotException(string message, Exception inner) : base(message, inner) { }
}
