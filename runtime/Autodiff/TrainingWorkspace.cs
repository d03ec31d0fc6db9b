namespace Qwen2VL.Runtime;

/// <summary>
/// The buffers a module type's generated training code uses, with recomputation on, for the values it does not keep
/// (norms, activations, softmax, rotary outputs): <c>ForwardTrain</c> writes them and reads them within the same call,
/// <c>Backward</c> recomputes them into it. A value lives in it only within one call, and runners of one module type
/// never run inside each other, so every runner of the type on one <see cref="ComputeContext"/> shares one workspace:
/// the memory it takes does not grow with the number of layers.
/// </summary>
public sealed class TrainingWorkspace
{
    private readonly ComputeContext _ctx;
    private DeviceTensor?[] _slots = [];

    internal TrainingWorkspace(ComputeContext ctx) => _ctx = ctx;

    /// <summary>Floats allocated in this workspace.</summary>
    public long Floats => _slots.Sum(s => (long)(s?.Length ?? 0));

    /// <summary>Grows slot <paramref name="slot"/> to at least <paramref name="length"/> floats (called before any <see cref="Slot"/> of a pass).</summary>
    public void Reserve(int slot, int length)
    {
        if (slot >= _slots.Length)
            Array.Resize(ref _slots, slot + 1);
        var buffer = _slots[slot];
        if (buffer is not null && buffer.Length >= length)
            return;
        buffer?.Dispose();
        _slots[slot] = _ctx.Allocate(Math.Max(length, 1));
    }

    /// <summary>A view of the given shape at the start of a reserved slot.</summary>
    public DeviceTensor Slot(int slot, params int[] shape)
    {
        int length = 1;
        foreach (var d in shape) length *= d;
        var buffer = slot < _slots.Length ? _slots[slot] : null;
        if (buffer is null || buffer.Length < length)
            throw new InvalidOperationException($"training workspace slot {slot} holds {buffer?.Length ?? 0} floats, {length} needed: Reserve it first");
        return buffer.Slice(0, length, shape);
    }
}

public sealed partial class ComputeContext
{
    private readonly Dictionary<string, TrainingWorkspace> _workspaces = new();

    /// <summary>The recompute workspace shared by every runner of module type <paramref name="owner"/> on this context.</summary>
    public TrainingWorkspace TrainingWorkspace(string owner)
    {
        lock (_workspaces)
        {
            if (!_workspaces.TryGetValue(owner, out var workspace))
                _workspaces[owner] = workspace = new TrainingWorkspace(this);
            return workspace;
        }
    }

    /// <summary>Floats held by the recompute workspaces of every module type on this context.</summary>
    public long TrainingWorkspaceFloats
    {
        get
        {
            lock (_workspaces)
                return _workspaces.Values.Sum(w => w.Floats);
        }
    }
}
