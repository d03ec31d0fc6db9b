namespace Qwen2VL.Generator.Model;

/// <summary>Kinds of fused groups, each with one emitter per target.</summary>
public static class GroupKinds
{
    public const string Elementwise = "elementwise"; // pointwise chain, one kernel
    public const string Gemm = "gemm";               // linear with a fused epilogue (bias, activation, residual…)
    public const string Norm = "norm";               // LayerNorm / RmsNorm, optionally with the residual add before it
    public const string Softmax = "softmax";
    public const string Rotary = "rotary";
    public const string Copy = "copy";               // transpose, select, concat, embedding gather
    public const string Attention = "attention";     // runtime provider
    public const string View = "view";               // reshape, split/merge heads: no kernel, no copy
    public const string Call = "call";               // submodule Forward
    public const string Loop = "loop";               // layer loop over a submodule array
}

/// <summary>
/// A fused group: the graph nodes one kernel (or one runtime call) computes. <see cref="Output"/> is the value
/// the group materialises; <see cref="Residual"/> is a second materialised value (the sum a norm+residual
/// kernel also writes), or -1.
/// </summary>
public sealed record KernelGroup(int Id, string Kind, EquatableArray<int> Nodes, int Output, int Residual, string Name);

/// <summary>Which arena slot each materialised value lives in (-1: not in the arena).</summary>
public sealed record MemoryPlan(int SlotCount, EquatableArray<int> SlotOfNode, EquatableArray<int> AliasOf);

public sealed record FusedGraph(Graph Graph, EquatableArray<KernelGroup> Groups, MemoryPlan Plan);
