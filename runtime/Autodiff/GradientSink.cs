namespace Qwen2VL.Runtime;

/// <summary>
/// Where a generated runner's Backward accumulates parameter gradients: the gradient tensor of a parameter by its
/// full checkpoint name (same shape as the weight), or null when the parameter is frozen (its weight gradient is then
/// not computed). Gradients are accumulated (+=), so the owner zeroes them between optimizer steps.
/// </summary>
public interface IGradientSink
{
    DeviceTensor? GradientOf(string name);
}

/// <summary>A gradient sink that allocates a zeroed gradient the first time a parameter asks for one.</summary>
/// <remarks>Shapes come from <see cref="Declare"/> or from <paramref name="shapeOf"/> (e.g. the checkpoint's tensor shapes).</remarks>
public sealed class GradientMap(ComputeContext ctx, Func<string, bool>? trainable = null, Func<string, int[]?>? shapeOf = null)
    : IGradientSink, IDisposable
{
    private readonly Dictionary<string, DeviceTensor> _grads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int[]> _shapes = new(StringComparer.Ordinal);

    /// <summary>Declares a parameter's shape (the runner asks by name only).</summary>
    public void Declare(string name, params int[] shape) => _shapes[name] = shape;

    public IReadOnlyDictionary<string, DeviceTensor> Gradients => _grads;

    public DeviceTensor? GradientOf(string name)
    {
        if (trainable is not null && !trainable(name))
            return null;
        if (_grads.TryGetValue(name, out var grad))
            return grad;
        if (!_shapes.TryGetValue(name, out var shape) && (shape = shapeOf?.Invoke(name)) is null)
            throw new ModelException($"no gradient shape was declared for parameter '{name}'");
        return _grads[name] = ctx.Allocate(shape);
    }

    public void Zero()
    {
        foreach (var grad in _grads.Values)
            ctx.Clear(grad);
    }

    public void Dispose()
    {
        foreach (var grad in _grads.Values)
            grad.Dispose();
    }
}
