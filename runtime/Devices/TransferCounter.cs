namespace Qwen2VL.Runtime;

/// <summary>Which way bytes crossed between the host and a device.</summary>
public enum TransferDirection
{
    HostToDevice,
    DeviceToHost,
}

/// <summary>One counted transfer: its direction, its size and the shape of the tensor it filled or read.</summary>
public readonly record struct Transfer(TransferDirection Direction, long Bytes, string What);

/// <summary>
/// Bytes moved between the host and one device (<see cref="ComputeContext.Transfers"/>), by direction: every upload,
/// host-to-tensor copy and download of a context goes through it, so a test can assert that a step moves only its
/// inputs in and its asked outputs out. On the cpu device the "device" is host memory too, but the same calls are
/// counted: what would cross a PCIe bus on a GPU crosses this counter on every device. Two interlocked adds per
/// transfer; the per-transfer log is kept only while <see cref="Recording"/> is on.
/// </summary>
public sealed class TransferCounter
{
    private long _toDevice, _toHost, _uploads, _downloads;
    private readonly List<Transfer> _log = new();

    /// <summary>Bytes copied from host memory into device tensors since the last <see cref="Reset"/>.</summary>
    public long HostToDeviceBytes => Interlocked.Read(ref _toDevice);

    /// <summary>Bytes copied from device tensors into host memory since the last <see cref="Reset"/>.</summary>
    public long DeviceToHostBytes => Interlocked.Read(ref _toHost);

    /// <summary>Host-to-device transfers (calls) since the last <see cref="Reset"/>.</summary>
    public long Uploads => Interlocked.Read(ref _uploads);

    /// <summary>Device-to-host transfers (calls) since the last <see cref="Reset"/>.</summary>
    public long Downloads => Interlocked.Read(ref _downloads);

    /// <summary>When on, every transfer is also appended to <see cref="Log"/> (for tests that say what moved).</summary>
    public bool Recording { get; set; }

    /// <summary>The transfers recorded since the last <see cref="Reset"/> while <see cref="Recording"/> was on.</summary>
    public IReadOnlyList<Transfer> Log
    {
        get { lock (_log) return _log.ToArray(); }
    }

    /// <summary>Zeroes the counts and clears the log.</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _toDevice, 0);
        Interlocked.Exchange(ref _toHost, 0);
        Interlocked.Exchange(ref _uploads, 0);
        Interlocked.Exchange(ref _downloads, 0);
        lock (_log) _log.Clear();
    }

    public override string ToString() =>
        $"{HostToDeviceBytes} B in {Uploads} uploads, {DeviceToHostBytes} B in {Downloads} downloads";

    internal void Count(TransferDirection direction, long bytes, DeviceTensor tensor)
    {
        if (direction == TransferDirection.HostToDevice)
        {
            Interlocked.Add(ref _toDevice, bytes);
            Interlocked.Increment(ref _uploads);
        }
        else
        {
            Interlocked.Add(ref _toHost, bytes);
            Interlocked.Increment(ref _downloads);
        }
        if (Recording)
            lock (_log) _log.Add(new Transfer(direction, bytes, tensor.ToString()));
    }
}
