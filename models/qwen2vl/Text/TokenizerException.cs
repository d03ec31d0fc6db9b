using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Text;

/// <summary>
/// Bad tokenizer input: a missing or malformed <c>tokenizer.json</c>, an id outside the vocabulary, a prompt whose
/// vision placeholders do not match the grids. The message is one line that names the problem; the CLI prints it
/// as is with exit code 2.
/// </summary>
public sealed class TokenizerException : ModelException
{
    public TokenizerException(string message) : base(message) { }

    public TokenizerException(string message, Exception inner) : base(message, inner) { }
}
