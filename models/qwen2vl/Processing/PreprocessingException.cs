namespace Qwen2VL.Model.Processing;

/// <summary>
/// Bad image / video input or preprocessor configuration. The message is one line and names the file or
/// setting at fault, so the CLI can print it as is. (Meant to derive from the runtime's ModelException once
/// that exists; until then it is a plain exception.)
/// </summary>
public sealed class PreprocessingException : Exception
{
    public PreprocessingException(string message) : base(message) { }

    public PreprocessingException(string message, Exception inner) : base(message, inner) { }
}
