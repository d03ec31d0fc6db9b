using System;
using System.Collections.Generic;

namespace Qwen2VL.Generator.Model;

/// <summary>
/// The closed set of node kinds the generator understands. Every pass and every target's lowering switches over it
/// without a default arm, so a kind added here without a lowering does not compile (CS8509 is an error). A DSL op the
/// generator has no kind for is <see cref="Unsupported"/> (elementwise ops with a formula are <see cref="Pointwise"/>):
/// its lowering reports QVL0901 on the line that uses it.
/// </summary>
public enum OpKind
{
    // Leaves and structure.
    Input,
    Param,
    Call,
    Loop,

    // Elementwise: lowered from the op's Scalar formula.
    Add,
    Mul,
    Scale,
    QuickGelu,
    Gelu,
    Silu,
    Sigmoid,
    /// <summary>An elementwise op declared outside Qwen2VL.Dsl.Ops, lowered from its Scalar formula.</summary>
    Pointwise,

    // Row-wise statistics over the last axis.
    LayerNorm,
    RmsNorm,
    Softmax,

    // Products, positions, attention.
    Linear,
    VisionRotary,
    MRope,
    Attention,
    CausalAttention,

    // Movement: views (no copy) and copies.
    Reshape,
    SplitHeads,
    MergeHeads,
    Transpose,
    Select,
    Concat,
    Embedding,

    // Collectives of the tensor-parallel group (Megatron's conjugate pairs). Shape inference and autodiff know them
    // (their gradient rows are the backward collectives); no sharding pass places them and no target lowers them yet,
    // so a module that calls one gets QVL0901 per target on its line.
    ParallelCopy,
    AllReduce,
    AllGather,
    ReduceScatter,

    /// <summary>A declared op the generator has no kind for: no target can lower it.</summary>
    Unsupported,
}

/// <summary>The groups of the closed op set (the DSL's <c>OpGroup</c>, plus leaves and submodule calls).</summary>
public enum OpGroup
{
    Leaf,
    Elementwise,
    Norm,
    Reduce,
    Matmul,
    Rotary,
    Attention,
    Movement,
    Collective,
    Call,
}

/// <summary>Element types of graph values. Every value carries one; lowering picks loads and stores by it.</summary>
public enum DType
{
    F32,
    BF16,
    F16,
    I64,
}

/// <summary>Facts about op kinds, as tables: which DSL op names map to kinds, which kinds are views.</summary>
public static class OpTable
{
    private static readonly Dictionary<string, OpKind> Builtin = new(StringComparer.Ordinal)
    {
        ["Add"] = OpKind.Add,
        ["Mul"] = OpKind.Mul,
        ["Scale"] = OpKind.Scale,
        ["QuickGelu"] = OpKind.QuickGelu,
        ["Gelu"] = OpKind.Gelu,
        ["Silu"] = OpKind.Silu,
        ["Sigmoid"] = OpKind.Sigmoid,
        ["LayerNorm"] = OpKind.LayerNorm,
        ["RmsNorm"] = OpKind.RmsNorm,
        ["Softmax"] = OpKind.Softmax,
        ["Linear"] = OpKind.Linear,
        ["VisionRotary"] = OpKind.VisionRotary,
        ["MRope"] = OpKind.MRope,
        ["Attention"] = OpKind.Attention,
        ["CausalAttention"] = OpKind.CausalAttention,
        ["Reshape"] = OpKind.Reshape,
        ["SplitHeads"] = OpKind.SplitHeads,
        ["MergeHeads"] = OpKind.MergeHeads,
        ["Transpose"] = OpKind.Transpose,
        ["Select"] = OpKind.Select,
        ["Concat"] = OpKind.Concat,
        ["Embedding"] = OpKind.Embedding,
        ["ParallelCopy"] = OpKind.ParallelCopy,
        ["AllReduce"] = OpKind.AllReduce,
        ["AllGather"] = OpKind.AllGather,
        ["ReduceScatter"] = OpKind.ReduceScatter,
    };

    /// <summary>
    /// The kind of a declared op: the built-in kind of a <c>Qwen2VL.Dsl.Ops</c> method, <see cref="OpKind.Pointwise"/> for any
    /// other elementwise op with a formula, <see cref="OpKind.Unsupported"/> otherwise.
    /// </summary>
    public static OpKind Resolve(string name, bool declaredByDsl, OpGroup group, bool hasScalar)
    {
        if (declaredByDsl && Builtin.TryGetValue(name, out var kind))
            return kind;
        return group == OpGroup.Elementwise && hasScalar ? OpKind.Pointwise : OpKind.Unsupported;
    }

    /// <summary>Ops whose result is their input's storage under another shape.</summary>
    public static bool IsView(OpKind kind) => kind is OpKind.Reshape or OpKind.SplitHeads or OpKind.MergeHeads;

    public static bool IsLeaf(OpKind kind) => kind is OpKind.Input or OpKind.Param;

    /// <summary>Submodule calls: a single call or the layer loop.</summary>
    public static bool IsCall(OpKind kind) => kind is OpKind.Call or OpKind.Loop;

    /// <summary>The node-kind word of the pass dump: input, param, call, loop or op.</summary>
    public static string DumpWord(OpKind kind) => kind switch
    {
        OpKind.Input => "input",
        OpKind.Param => "param",
        OpKind.Call => "call",
        OpKind.Loop => "loop",
        _ => "op",
    };
}
