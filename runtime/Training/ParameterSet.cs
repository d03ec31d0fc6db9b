using System.Text.RegularExpressions;

namespace Qwen2VL.Runtime.Training;

/// <summary>One registered parameter: its name, shape, flags and, once packed, its element range in the flat buffers.</summary>
public sealed record ParameterInfo(string Name, int[] Shape, bool Trainable, bool Decay, int Offset)
{
    public int Length => DeviceTensor.ElementCount(Shape);
}

/// <summary>
/// All parameters of a model packed into one contiguous float32 buffer (the master weights), with flat
/// gradient and Adam moment buffers, so the optimizer, clipping and zeroing are one kernel each.
/// Layout of the weight buffer, in registration order inside each range:
/// <code>[0, DecayEnd)            trainable parameters with weight decay
/// [DecayEnd, TrainableEnd)  trainable parameters without weight decay (biases, norms)
/// [TrainableEnd, Length)    frozen parameters (never updated)</code>
/// Gradients and the moments m, v cover only [0, TrainableEnd): frozen parameters have no gradient storage.
/// With bf16 compute (<see cref="Build"/>(bf16Compute: true)) the forward and backward passes read compute weights
/// held in 16 bits: a bf16 buffer of the same layout (2 bytes per element) holds the master weights rounded to bfloat16
/// (<see cref="Bf16.Round"/>, ties to even), and the optimizer updates the f32 masters and rewrites it in the same
/// kernel. Parameters whose kernels read f32 (<c>wide</c>: norms, biases, a conv) also get an f32 copy of their rounded
/// values in a small packed buffer, and the runners bind to that. Checkpoints save the masters.
/// Bytes held: 4 per element of masters, 2 of bf16 compute weights, 4 per wide element, and per trainable element 4 of
/// gradient and 8 of moments (<see cref="HeldBytes"/>); without bf16 compute the masters are the compute weights.
/// Use: <see cref="Add"/> every parameter, <see cref="Freeze"/> by pattern, then <see cref="Build"/>; after that the
/// layout is fixed and <see cref="Weight"/> / <see cref="Grad"/> return views into the flat buffers.
/// </summary>
public sealed class ParameterSet : IDisposable
{
    private readonly ComputeContext _ctx;
    private readonly List<(string Name, int[] Shape, bool Trainable, bool Decay)> _pending = new();
    private readonly Dictionary<string, ParameterInfo> _byName = new(StringComparer.Ordinal);
    private readonly List<ParameterInfo> _ordered = new();
    private DeviceTensor? _weights, _grads, _m, _v, _compute16, _computeWide;
    private ushort[]? _computeBits;                                     // the cpu storage of _compute16 (the optimizer writes it)
    private readonly Dictionary<string, int> _wideOffsets = new(StringComparer.Ordinal);

    public ParameterSet(ComputeContext ctx) => _ctx = ctx;

    public bool IsBuilt => _weights is not null;

    /// <summary>Elements of decayed trainable parameters: the optimizer decays [0, DecayEnd).</summary>
    public int DecayEnd { get; private set; }

    /// <summary>Elements of all trainable parameters: the optimizer updates [0, TrainableEnd).</summary>
    public int TrainableEnd { get; private set; }

    /// <summary>Elements of all parameters, frozen included.</summary>
    public int Length { get; private set; }

    /// <summary>
    /// The range of the trainable buffer the Adam moments cover: [MomentStart, MomentStart + MomentCount) — all of
    /// [0, TrainableEnd), or under ZeRO-1 this rank's block (<see cref="ShardOptimizerState"/>). The optimizer updates
    /// exactly this range.
    /// </summary>
    public int MomentStart { get; private set; }
    public int MomentCount { get; private set; }

    /// <summary>Registers a parameter (before <see cref="Build"/>). Names are unique.</summary>
    public void Add(string name, int[] shape, bool trainable = true, bool decay = true)
    {
        if (IsBuilt) throw new InvalidOperationException($"cannot add '{name}': the parameter set is already built");
        if (_pending.Any(p => p.Name == name)) throw new ArgumentException($"parameter '{name}' is registered twice");
        _ = DeviceTensor.ElementCount(shape); // validates the shape
        _pending.Add((name, (int[])shape.Clone(), trainable, decay));
    }

    /// <summary>
    /// Marks every registered parameter whose full name matches <paramref name="globPattern"/> as frozen (before
    /// <see cref="Build"/>). '*' matches any run of characters, dots included ("visual.*", "model.layers.*.mlp.*");
    /// '?' matches one character. Returns how many parameters matched.
    /// </summary>
    public int Freeze(string globPattern)
    {
        if (IsBuilt) throw new InvalidOperationException($"cannot freeze '{globPattern}': the parameter set is already built");
        var regex = new Regex("^" + Regex.Escape(globPattern).Replace(@"\*", ".*").Replace(@"\?", ".") + "$", RegexOptions.CultureInvariant);
        int matched = 0;
        for (int i = 0; i < _pending.Count; i++)
        {
            if (!regex.IsMatch(_pending[i].Name)) continue;
            _pending[i] = _pending[i] with { Trainable = false };
            matched++;
        }
        return matched;
    }

    /// <summary>
    /// Fixes the layout and allocates the zeroed weight, gradient, m and v buffers, and with
    /// <paramref name="bf16Compute"/> the 16-bit compute weights, plus f32 compute copies of the parameters
    /// <paramref name="wide"/> accepts (those whose kernels read f32).
    /// </summary>
    public void Build(bool bf16Compute = false, Func<string, bool>? wide = null)
    {
        if (IsBuilt) throw new InvalidOperationException("the parameter set is already built");
        int offset = 0;
        void Place(Func<(string Name, int[] Shape, bool Trainable, bool Decay), bool> which)
        {
            foreach (var p in _pending.Where(which))
            {
                var info = new ParameterInfo(p.Name, p.Shape, p.Trainable, p.Decay, offset);
                if ((long)offset + info.Length > int.MaxValue) throw new ArgumentException("parameters exceed 2^31 elements in total");
                offset += info.Length;
                _byName[p.Name] = info;
                _ordered.Add(info);
            }
        }
        Place(p => p.Trainable && p.Decay);
        DecayEnd = offset;
        Place(p => p.Trainable && !p.Decay);
        TrainableEnd = offset;
        Place(p => !p.Trainable);
        Length = offset;
        _weights = _ctx.Allocate(Length);
        _grads = _ctx.Allocate(TrainableEnd);
        _m = _ctx.Allocate(TrainableEnd);
        _v = _ctx.Allocate(TrainableEnd);
        MomentCount = TrainableEnd;
        if (!bf16Compute) return;
        _compute16 = _ctx.AllocateBf16(Length, out _computeBits);
        int wideLength = 0;
        foreach (var info in _ordered.Where(p => wide?.Invoke(p.Name) == true))
        {
            _wideOffsets[info.Name] = wideLength;
            wideLength += info.Length;
        }
        _computeWide = _ctx.Allocate(wideLength);
    }

    /// <summary>
    /// ZeRO-1: keep the Adam moments of [start, start + count) only (zeroed), so this rank holds count/TrainableEnd of
    /// the optimizer state; <see cref="MomentM"/> and <see cref="MomentV"/> become that block.
    /// </summary>
    public void ShardOptimizerState(int start, int count)
    {
        Built();
        if (start < 0 || count < 0 || (long)start + count > TrainableEnd)
            throw new ArgumentOutOfRangeException(nameof(start), $"block [{start}, {(long)start + count}) is outside the trainable range of {TrainableEnd}");
        _m!.Dispose();
        _v!.Dispose();
        _m = _ctx.Allocate(count);
        _v = _ctx.Allocate(count);
        MomentStart = start;
        MomentCount = count;
    }

    /// <summary>Parameters in buffer order.</summary>
    public IReadOnlyList<ParameterInfo> Parameters => Built()._ordered;

    public ParameterInfo Info(string name) =>
        Built()._byName.TryGetValue(name, out ParameterInfo? info) ? info : throw new KeyNotFoundException($"no parameter named '{name}'");

    public bool IsTrainable(string name) => Info(name).Trainable;

    /// <summary>The master weights of one parameter: a view with its shape.</summary>
    public DeviceTensor Weight(string name)
    {
        ParameterInfo info = Info(name);
        return AllWeights.Slice(info.Offset, info.Length, info.Shape);
    }

    /// <summary>True when the forward and backward passes read bf16-rounded compute weights, not the masters.</summary>
    public bool Bf16Compute => Built()._compute16 is not null;

    /// <summary>The 16-bit compute weights [Length] in the masters' layout (null without bf16 compute).</summary>
    public DeviceTensor? Bf16ComputeWeights => Built()._compute16;

    /// <summary>The cpu storage of <see cref="Bf16ComputeWeights"/>, which the optimizer writes (null elsewhere).</summary>
    internal ushort[]? Bf16ComputeBits => _computeBits;

    /// <summary>
    /// The compute weights of one parameter, a view with its shape: without bf16 compute the master view; with it the
    /// parameter's f32 copy of its rounded values where it is wide, else its bf16 view.
    /// </summary>
    public DeviceTensor ComputeWeight(string name)
    {
        ParameterInfo info = Info(name);
        if (_compute16 is null) return AllWeights.Slice(info.Offset, info.Length, info.Shape);
        return _wideOffsets.TryGetValue(name, out int at)
            ? _computeWide!.Slice(at, info.Length, info.Shape)
            : _compute16.Slice(info.Offset, info.Length, info.Shape);
    }

    /// <summary>True when <paramref name="name"/>'s compute weights are an f32 copy (bf16 compute, a wide parameter).</summary>
    public bool IsWide(string name) => _wideOffsets.ContainsKey(name);

    /// <summary>Sets every compute weight to its master rounded to bf16 (all parameters, frozen included); no-op without bf16 compute.</summary>
    public void RoundComputeWeights()
    {
        if (_compute16 is null) return;
        Bf16.RoundIntoBits(_ctx, AllWeights, _compute16, _computeBits);
        RoundWideComputeWeights();
    }

    /// <summary>Sets the f32 compute copies of the wide parameters to their masters rounded to bf16.</summary>
    public void RoundWideComputeWeights()
    {
        foreach (var (name, at) in _wideOffsets)
        {
            ParameterInfo info = Info(name);
            Bf16.RoundInto(_ctx, AllWeights.Slice(info.Offset, info.Length, info.Length), _computeWide!.Slice(at, info.Length, info.Length));
        }
    }

    /// <summary>
    /// Bytes of the buffers this set holds, by kind: f32 masters (the compute weights too without bf16 compute), bf16
    /// compute weights, f32 compute copies of wide parameters, f32 gradients, f32 AdamW moments (m and v; under ZeRO-1
    /// this rank's block).
    /// </summary>
    public (long Masters, long Bf16Compute, long WideCompute, long Gradients, long Moments) HeldBytes
    {
        get
        {
            Built();
            return (4L * _weights!.Length, 2L * (_compute16?.Length ?? 0), 4L * (_computeWide?.Length ?? 0),
                4L * _grads!.Length, 4L * (_m!.Length + _v!.Length));
        }
    }

    /// <summary>The gradient of one trainable parameter (a view with its shape); frozen parameters have none.</summary>
    public DeviceTensor Grad(string name)
    {
        ParameterInfo info = Info(name);
        if (!info.Trainable) throw new InvalidOperationException($"parameter '{name}' is frozen and has no gradient buffer");
        return AllGrads.Slice(info.Offset, info.Length, info.Shape);
    }

    /// <summary>The flat buffers: weights [Length]; gradients [TrainableEnd]; Adam moments [MomentCount].</summary>
    public DeviceTensor AllWeights => Built()._weights!;
    public DeviceTensor AllGrads => Built()._grads!;
    public DeviceTensor MomentM => Built()._m!;
    public DeviceTensor MomentV => Built()._v!;

    /// <summary>Sets every gradient to zero (before accumulating the next batch).</summary>
    public void ZeroGrads() => _ctx.Clear(AllGrads);

    private ParameterSet Built() => IsBuilt ? this : throw new InvalidOperationException("call Build() before using the parameter buffers");

    public void Dispose()
    {
        _weights?.Dispose();
        _grads?.Dispose();
        _m?.Dispose();
        _v?.Dispose();
        _compute16?.Dispose();
        _computeWide?.Dispose();
    }
}
