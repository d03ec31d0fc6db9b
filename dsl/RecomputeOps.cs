namespace Qwen2VL.Dsl;

/// <summary>
/// A module's recompute policy (<c>[Module(Recompute = …)]</c>): the op groups whose outputs the generated training
/// code does not keep for the backward pass when recomputation is enabled at run time; <c>Backward</c> recomputes
/// them from the kept values just before their first use. Matmuls, attention, movement ops and submodule calls are
/// always kept (expensive, or views). The module's output is always kept (its caller reads it).
/// </summary>
[Flags]
public enum RecomputeOps
{
    /// <summary>Keep every value (recomputation has no effect on this module).</summary>
    None = 0,
    /// <summary>LayerNorm / RmsNorm outputs (<see cref="OpGroup.Norm"/>).</summary>
    Norms = 1,
    /// <summary>Activations and other pointwise ops: Silu, QuickGelu, residual adds, gates (<see cref="OpGroup.Elementwise"/>).</summary>
    Activations = 2,
    /// <summary>Softmax probabilities (<see cref="OpGroup.Reduce"/>). Attention never keeps its probabilities anyway.</summary>
    Softmax = 4,
    /// <summary>Rotary-embedded queries and keys (<see cref="OpGroup.Rotary"/>).</summary>
    Rotary = 8,
    /// <summary>All the cheap ops: norms, activations, softmax and rotary (the default).</summary>
    CheapOps = Norms | Activations | Softmax | Rotary,
}
