namespace Qwen2VL.Generator.Model;

/// <summary>
/// Kinds of fused groups (a closed set). Fusion maps every <see cref="OpKind"/> to one with an exhaustive switch; each
/// target lowers every one with an exhaustive switch, so a kind without a lowering does not compile.
/// </summary>
public enum GroupKind
{
    Elementwise, // pointwise chain, one kernel
    Gemm,        // linear with a fused epilogue (bias, activation, residual…)
    Norm,        // LayerNorm / RmsNorm, optionally with the residual add before it
    Softmax,
    Rotary,
    Copy,        // transpose, select, concat, embedding gather
    Attention,   // runtime provider
    View,        // reshape, split/merge heads: no kernel, no copy
    Call,        // submodule Forward
    Loop,        // layer loop over a submodule array
    Unlowered,   // one op of kind OpKind.Unsupported or a collective: every target reports QVL0901 on its line
}

public static class GroupKindNames
{
    /// <summary>The lower-case word of the pass dump and kernel comments ("elementwise", "gemm", …).</summary>
    public static string Word(this GroupKind kind) => kind.ToString().ToLowerInvariant();
}

/// <summary>
/// A fused group: the graph nodes one kernel (or one runtime call) computes. <see cref="Output"/> is the value
/// the group materialises; <see cref="Residual"/> is a second materialised value (the sum a norm+residual
/// kernel also writes), or -1.
/// </summary>
public sealed record KernelGroup(int Id, GroupKind Kind, EquatableArray<int> Nodes, int Output, int Residual, string Name);

/// <summary>Which arena slot each materialised value lives in (-1: not in the arena).</summary>
public sealed record MemoryPlan(int SlotCount, EquatableArray<int> SlotOfNode, EquatableArray<int> AliasOf);

public sealed record FusedGraph(Graph Graph, EquatableArray<KernelGroup> Groups, MemoryPlan Plan);
