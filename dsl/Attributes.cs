namespace Qwen2VL.Dsl;

/// <summary>
/// Marks a <c>partial class</c> as a model module. The source generator reads its
/// <see cref="ParamAttribute"/> fields, <see cref="DimAttribute"/> dims, <see cref="ConstAttribute"/> float constants, <see cref="SubmoduleAttribute"/>
/// fields and its <c>Forward</c> method, and emits fused kernels plus a runner that executes them.
/// Run as plain C#, the same class is the slow float64 reference of itself.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class ModuleAttribute : Attribute
{
    /// <summary>
    /// Which op groups the generated training code recomputes in <c>Backward</c> instead of keeping their outputs from
    /// <c>ForwardTrain</c>, when the runner's <c>Recompute</c> option is on (selective activation checkpointing).
    /// Default: <see cref="RecomputeOps.CheapOps"/>.
    /// </summary>
    public RecomputeOps Recompute { get; set; } = RecomputeOps.CheapOps;

    /// <summary>
    /// Tensor-parallel degrees the module's shard plan (<see cref="ParamAttribute.Shard"/>) is meant for. The generator
    /// checks each against the sharded dims it can evaluate (literals, and config dims through their <c>Default</c>):
    /// a degree that does not divide one is QVL0401 on the param's line. Dims bound only at load time are checked then
    /// (the runner's <c>CheckTensorParallel</c>).
    /// </summary>
    public int[]? TensorParallel { get; set; }
}

/// <summary>
/// How tensor parallelism splits a [Param] over ranks (Megatron-LM's layouts). A linear weight is [Out, In].
/// </summary>
public enum Shard
{
    /// <summary>Every rank holds all of it (norms, a row-parallel layer's bias).</summary>
    Replicated,
    /// <summary>Column-parallel: the output features (axis 0 of the weight, and the bias) split over the ranks; each rank computes its slice of the output (q/k/v, gate/up, fc1, qkv).</summary>
    Column,
    /// <summary>Row-parallel: the input features (axis 1) split; each rank's partial products are summed by an all-reduce (o_proj, down, fc2, proj).</summary>
    Row,
    /// <summary>Vocabulary-parallel: the rows of an embedding or output head (axis 0) split by token id (embed_tokens, lm_head).</summary>
    Vocab,
}

/// <summary>
/// A size bound from <c>config.json</c> at load time (<paramref name="configKey"/> is a dotted path such as
/// <c>vision_config.embed_dim</c>), or derived from other dims when the member is an expression-bodied
/// property (<c>public int HeadDim => Embed / Heads;</c>). Put it on an <c>int</c> field or property.
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false)]
public sealed class DimAttribute(string? configKey = null) : Attribute
{
    public string? ConfigKey { get; } = configKey;

    /// <summary>Used when the config lacks the key (Hugging Face class defaults). <c>int.MinValue</c> = required.</summary>
    public int Default { get; set; } = int.MinValue;
}

/// <summary>
/// A float constant bound from <c>config.json</c> at load time (<paramref name="configKey"/> is a dotted path such as
/// <c>rope_theta</c>), for the float scalar arguments of ops: <c>[Const("rms_norm_eps", Default = 1e-6)] public float Eps;</c>
/// then <c>RmsNorm(x, W, Eps)</c>. The generated kernels take it as an argument, so one compiled kernel serves every
/// config. Put it on a <c>float</c> field or settable property.
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false)]
public sealed class ConstAttribute(string configKey) : Attribute
{
    public string ConfigKey { get; } = configKey;

    /// <summary>Used when the config lacks the key (Hugging Face class defaults). <c>NaN</c> = required.</summary>
    public double Default { get; set; } = double.NaN;
}

/// <summary>
/// A weight tensor: <paramref name="checkpointName"/> is the name relative to the module's prefix in the
/// checkpoint, <paramref name="shape"/> its dims as dim expressions (<c>"3*Embed"</c>, <c>"Embed"</c>, <c>"16"</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false)]
public sealed class ParamAttribute(string checkpointName, params string[] shape) : Attribute
{
    public string CheckpointName { get; } = checkpointName;
    public string[] Shape { get; } = shape;

    /// <summary>The tensor-parallel split (default: replicated).</summary>
    public Shard Shard { get; set; } = Shard.Replicated;

    /// <summary>
    /// A dim expression: the sharded axis splits only between whole groups of this count — attention heads
    /// (<c>"Heads"</c>), KV heads (<c>"KvHeads"</c>) — so the degree must divide it. Default: the sharded axis's size.
    /// </summary>
    public string? ShardGroups { get; set; }
}

/// <summary>
/// A child module (or an array of them for repeated layers). <paramref name="checkpointPrefix"/> is appended to
/// the parent's prefix; for arrays the layer index follows it (<c>blocks.0.</c>, <c>blocks.1.</c>, …).
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false)]
public sealed class SubmoduleAttribute(string checkpointPrefix) : Attribute
{
    public string CheckpointPrefix { get; } = checkpointPrefix;

    /// <summary>For arrays: the dim that gives the number of layers (e.g. <c>"Depth"</c>).</summary>
    public string? Count { get; set; }
}

/// <summary>The symbolic shape (and dtype) of a <c>Forward</c> parameter: <c>[Shape("N", "Embed")]</c>.</summary>
[AttributeUsage(AttributeTargets.Parameter | AttributeTargets.ReturnValue, Inherited = false)]
public sealed class ShapeAttribute(params string[] dims) : Attribute
{
    public string[] Dims { get; } = dims;
    public DType DType { get; set; } = DType.F32;
}

/// <summary>The closed set of op groups. Passes ask "is this elementwise?" of the group, not of op names.</summary>
public enum OpGroup
{
    /// <summary>Same-shape pointwise maps (with suffix broadcasting of the second operand).</summary>
    Elementwise,
    /// <summary>Row-wise normalisations: statistics over the last axis.</summary>
    Norm,
    /// <summary>Row-wise reductions that are not norms (softmax).</summary>
    Reduce,
    /// <summary>Matrix products with a weight (linear). Elementwise consumers fuse into their epilogue.</summary>
    Matmul,
    /// <summary>Rotary position embeddings: pointwise within a head, pairing d with d + D/2.</summary>
    Rotary,
    /// <summary>Scaled dot-product attention (a runtime provider: flash-style online softmax).</summary>
    Attention,
    /// <summary>Data movement: reshape (a view), transpose, select, concat.</summary>
    Movement,
    /// <summary>
    /// Collectives over the tensor-parallel group (Megatron's conjugate pairs: ParallelCopy ↔ AllReduce, AllGather ↔
    /// ReduceScatter). Their float64 references run over the ranks of a <see cref="ReferenceGroup"/>; outside one
    /// (degree 1) each is the identity.
    /// </summary>
    Collective,
}

/// <summary>
/// Declares an op to the generator. <see cref="Shape"/> is its shape rule, written as argument patterns and a
/// result: <c>"x:[*B,K]; w:[N,K]; b?:[N] -> [*B,N]"</c>. Names in brackets are dim variables unified across
/// arguments, <c>*B</c> matches any number of leading dims, <c>?</c> marks an optional argument, and a
/// <c>:i64</c> suffix an integer tensor. <c>"custom"</c> means the generator has a dedicated rule (reshape …).
/// <see cref="Scalar"/> is the pointwise meaning of elementwise ops as a C# expression over the argument names
/// (<c>Exp</c>, <c>Erf</c>, <c>Sqrt</c> are available), used for both the GPU and CPU kernels.
/// <see cref="Grad"/> is the op's row of the gradient table: one assignment per differentiable operand,
/// <c>"d&lt;operand&gt; = expression"</c>, separated by <c>;</c>. The expression reads the operands, the op's output
/// <c>y</c>, the output gradient <c>dy</c> and the scalar arguments: for elementwise ops it is a scalar formula like
/// <see cref="Scalar"/> (<c>"dx = dy * (1f / (1f + Exp(-x)))"</c>); otherwise it calls ops, usually the backward ops
/// declared next to the op (<c>"dx = SoftmaxBackward(y, dy)"</c>). A view's gradient is a view of dy (<c>"dx = dy"</c>);
/// a broadcast operand's gradient is summed over the repeated rows. The generator parses the table (QVL0203 when a row
/// does not parse) and builds the backward pass from it.
/// </summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class OpAttribute(OpGroup group, string shape) : Attribute
{
    public OpGroup Group { get; } = group;
    public string Shape { get; } = shape;
    public string? Scalar { get; set; }
    public string? Grad { get; set; }
}
