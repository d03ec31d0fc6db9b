using System.Globalization;
using Qwen2VL.Model.Generation;

namespace Qwen2VL.Cli;

/// <summary>
/// What is said on stderr after an answer (stdout holds only the answer): speed, why it ended, and, when there is
/// nothing to read, why.
/// </summary>
internal static class AnswerReport
{
    public static void Print(ChatAnswer answer, GenerationOptions options)
    {
        if (Explain(answer, options) is { } why) Console.Error.WriteLine(why);
        Console.Error.WriteLine(Speed(answer, options));
    }

    /// <summary>One line: tokens, prefill and decode speed, and how the answer ended.</summary>
    public static string Speed(ChatAnswer answer, GenerationOptions options)
    {
        var inv = CultureInfo.InvariantCulture;
        double prefill = answer.PrefillTime.TotalSeconds > 0 ? answer.PromptTokens / answer.PrefillTime.TotalSeconds : 0;
        string ended = answer.Finish switch
        {
            FinishReason.Stop => "ended by the model",
            FinishReason.Length => $"cut at --max-new-tokens {options.MaxNewTokens}",
            _ => "cut: the context is full",
        };
        return string.Format(inv, "({0} tokens, {1:0.0} tokens/s; prompt {2} tokens at {3:0.0} tokens/s; {4})",
            answer.Tokens.Count, answer.DecodeTokensPerSecond, answer.PromptTokens, prefill, ended);
    }

    /// <summary>Why an answer shows no text, or null when it has some.</summary>
    public static string? Explain(ChatAnswer answer, GenerationOptions options)
    {
        if (answer.Text.Trim().Length > 0) return null;
        if (options.MaxNewTokens == 0) return "(empty answer: --max-new-tokens is 0)";
        if (answer.Tokens.Count == 0)
            return "(empty answer: the model's first token was an end-of-turn token, so it chose to say nothing; try another prompt, a system prompt, or sampling with --temperature)";
        return answer.Text.Length == 0
            ? $"(empty answer: the model generated {answer.Tokens.Count} token(s), all special tokens, which are not shown)"
            : $"(the answer is only whitespace: {answer.Tokens.Count} token(s))";
    }
}
