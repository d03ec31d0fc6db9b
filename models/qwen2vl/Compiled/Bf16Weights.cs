using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// <c>--dtype bf16</c>: which weights of a BF16 checkpoint stay bf16 in memory, so that a bf16 checkpoint is not
/// widened. The linear weights of the decoder layers, the vision blocks and the patch merger (GEMM weight operands,
/// widened in registers by the bf16 GEMM), the lm_head (likewise), and the token embedding table (gathered one row at
/// a time and widened as it is copied out, <see cref="ComputeContext.GatherBf16Rows"/>); with a tied head the table and
/// the head are one tensor. Together 99.9% of Qwen2-VL-2B's parameters. What stays f32 is small: norms, biases and the
/// patch-embedding conv (the generated kernels read those as f32; a bf16 element type in the IR is the generator's part
/// of issue 12). Activations and arithmetic stay f32, so the result equals the f32 path's up to summation order.
/// </summary>
public static class Bf16Weights
{
    private static readonly string[] DecoderLinear =
        ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
         "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"];

    private static readonly string[] VisionLinear = ["attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"];

    private static readonly string[] MergerLinear = ["mlp.0.weight", "mlp.2.weight"];

    /// <summary>True for a name (as the runners ask for it) whose weight is only a GEMM weight operand.</summary>
    public static bool IsLinearWeight(string name) =>
        Under(name, "model.layers.", DecoderLinear) || Under(name, "visual.blocks.", VisionLinear) || Under(name, "visual.merger.", MergerLinear);

    /// <summary>The token embedding table and the untied head: read as bf16 too (see the class summary).</summary>
    private static readonly string[] Vocabulary = ["model.embed_tokens.weight", "lm_head.weight"];

    /// <summary>True for a name (as the runners ask for it) whose weight <c>--dtype bf16</c> keeps in bf16.</summary>
    public static bool IsKeptBf16(string name) => IsLinearWeight(name) || Vocabulary.Contains(name);

    private static bool Under(string name, string prefix, string[] suffixes) =>
        name.StartsWith(prefix, StringComparison.Ordinal) && suffixes.Any(s => name.EndsWith("." + s, StringComparison.Ordinal));

    /// <summary>
    /// Checks that <c>--dtype bf16</c> can apply: a checkpoint whose linear weights are BF16. Returns the predicate for
    /// <see cref="WeightStore.KeepBf16"/> (any device: the CPU and ILGPU GEMMs and row gathers all read bf16 weights).
    /// </summary>
    public static Func<string, bool> For(WeightStore weights)
    {
        string? f32 = weights.Names.FirstOrDefault(n => IsKeptBf16(CheckpointNames.Canonical(n)) && weights.Info(n).DType != SafetensorsDType.BF16);
        if (f32 is not null)
            throw new ModelException($"--dtype bf16 needs a BF16 checkpoint; '{f32}' is stored as {weights.Info(f32).DType.Name()}");
        return IsKeptBf16;
    }
}
