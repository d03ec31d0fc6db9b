namespace Qwen2VL.Runtime;

/// <summary>
/// Named device buffers reused from call to call, so a step's inputs land on the device without a temporary
/// allocation: each name owns one buffer that only grows (to the largest size asked for), and a call returns a view
/// of it in the asked shape. A view is valid until the next call with the same name.
/// </summary>
public sealed class StagingBuffers(ComputeContext ctx) : IDisposable
{
    private readonly Dictionary<string, DeviceTensor> _buffers = new(StringComparer.Ordinal);

    /// <summary>Copies <paramref name="data"/> into the buffer named <paramref name="name"/>, as an int32 view of <paramref name="shape"/>.</summary>
    public DeviceTensor UploadInt(string name, ReadOnlySpan<int> data, params int[] shape)
    {
        var view = View(name, shape).AsInt();
        ctx.CopyFrom(data, view);
        return view;
    }

    /// <summary>Copies <paramref name="data"/> into the buffer named <paramref name="name"/>, as a float32 view of <paramref name="shape"/>.</summary>
    public DeviceTensor Upload(string name, ReadOnlySpan<float> data, params int[] shape)
    {
        var view = View(name, shape);
        ctx.CopyFrom(data, view);
        return view;
    }

    /// <summary>A float32 view of <paramref name="shape"/> over the buffer named <paramref name="name"/>; its contents are whatever was there.</summary>
    public DeviceTensor View(string name, params int[] shape)
    {
        int length = DeviceTensor.ElementCount(shape);
        if (!_buffers.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _buffers[name] = ctx.Allocate(Math.Max(length, 1));
        }
        return buffer.Slice(0, length, shape);
    }

    /// <summary>Elements held by all buffers (4 bytes each).</summary>
    public long Elements => _buffers.Values.Sum(b => (long)b.Length);

    public void Dispose()
    {
        foreach (var buffer in _buffers.Values)
            buffer.Dispose();
        _buffers.Clear();
    }
}
