namespace Qwen2VL.Model.Text;

/// <summary>
/// Bad tokenizer input: a missing or malformed <c>tokenizer.json</c>, an id outside the vocabulary, a prompt whose
/// vision placeholders do not match the grids. The message is one line that names the problem.
/// </summary>
/// <remarks>
/// Stand-in for the runtime's <c>Qwen2VL.Runtime.ModelException</c>, which does not exist on this branch yet;
/// when it does, this class should derive from it so the CLI reports it as one line with exit code 2.
/// </remarks>
public sealed class TokenizerException : Exception
{
    public TokenizerException(string message) : base(message) { }

    public TokenizerException(string message, Exception inner) : base(message, inner) { }
}
