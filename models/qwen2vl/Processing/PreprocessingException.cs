using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Processing;

/// <summary>
/// Bad image / video input or preprocessor configuration. The message is one line and names the file or
/// setting at fault; the CLI prints it as is with exit code 2.
/// </summary>
public class PreprocessingException : ModelException
{
    public PreprocessingException(string message) : base(message) { }

    public PreprocessingException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An image with more pixels than the caller's limit (an HTTP server answers 413).</summary>
public sealed class ImageTooLargeException(string message) : PreprocessingException(message);
