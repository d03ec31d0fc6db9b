using System;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>What a group is lowered to: the module's ILGPU kernels, its CPU kernels, or the host runner that launches them.</summary>
internal enum LoweringTarget
{
    GpuKernel,
    CpuKernel,
    HostRunner,
}

/// <summary>
/// A target has no lowering for an op. The generator reports it as QVL0901 on the op's line (one per target) and emits
/// nothing for that target: never an empty kernel that compiles and does nothing.
/// </summary>
internal sealed class UnloweredOpException(Node node, LoweringTarget target, string why)
    : Exception($"no {Describe(target)} lowering for op '{node.Op}' (kind {node.Kind}, line {node.Line}): {why}")
{
    public Node Node { get; } = node;
    public LoweringTarget Target { get; } = target;

    public static string Describe(LoweringTarget target) => target switch
    {
        LoweringTarget.GpuKernel => "GPU kernel",
        LoweringTarget.CpuKernel => "CPU kernel",
        LoweringTarget.HostRunner => "host runner",
    };
}
