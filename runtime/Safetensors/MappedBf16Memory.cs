using System.Buffers;

namespace Qwen2VL.Runtime;

/// <summary>
/// A bf16 tensor's 16-bit patterns read in place from a checkpoint's read-only mapping: weights kept in bf16 cost
/// no copy and no second resident image (the mapped pages are the weights). Valid while the file is open; a span
/// asked for after <see cref="SafetensorsFile.Dispose"/> throws.
/// </summary>
internal sealed unsafe class MappedBf16Memory(SafetensorsFile file, ushort* pointer, int length) : MemoryManager<ushort>
{
    public override Span<ushort> GetSpan()
    {
        file.ThrowIfDisposed();
        return new Span<ushort>(pointer, length);
    }

    /// <summary>Mapped memory never moves: pinning is only the address.</summary>
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        file.ThrowIfDisposed();
        return new MemoryHandle(pointer + elementIndex);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
