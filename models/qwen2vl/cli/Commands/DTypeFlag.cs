using System.CommandLine;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>--dtype bf16|f32</c> on <c>generate</c>, <c>chat</c> and <c>forward</c>: bf16 keeps a BF16 checkpoint bf16 in memory
/// (all but its norms, biases and patch-embedding conv; half the bytes read per decode step) and, on the cpu device,
/// the KV cache too; arithmetic and activations stay f32. f32 (the default) widens every weight on load.
/// </summary>
internal static class DTypeFlag
{
    public static Option<string> Create() => new("--dtype")
    {
        Description = "f32 (default): weights widened to f32 on load. bf16 (BF16 checkpoint): weights (all but norms, biases, patch conv) and the cpu KV cache stay bf16 in memory, computed in f32.",
        DefaultValueFactory = _ => "f32",
    };

    public static bool Bf16Weights(string value) => value switch
    {
        "bf16" => true,
        "f32" => false,
        _ => throw new ModelException($"--dtype must be bf16 or f32, got '{value}'"),
    };
}
