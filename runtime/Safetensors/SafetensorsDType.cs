namespace Qwen2VL.Runtime;

/// <summary>The element types this runtime reads and writes (a subset of the safetensors dtypes).</summary>
public enum SafetensorsDType { F32, BF16, F16, I64, I32, U8 }

/// <summary>Names and sizes of <see cref="SafetensorsDType"/> as they appear in a safetensors header.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Parses a header dtype string; <paramref name="context"/> prefixes the error (file and tensor).</summary>
    public static SafetensorsDType Parse(string name, string context) => name switch
    {
        "F32" => SafetensorsDType.F32,
        "BF16" => SafetensorsDType.BF16,
        "F16" => SafetensorsDType.F16,
        "I64" => SafetensorsDType.I64,
        "I32" => SafetensorsDType.I32,
        "U8" => SafetensorsDType.U8,
        _ => throw new SafetensorsException($"{context} has unsupported dtype '{name}' (supported: F32, BF16, F16, I64, I32, U8)"),
    };

    public static string Name(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => "F32",
        SafetensorsDType.BF16 => "BF16",
        SafetensorsDType.F16 => "F16",
        SafetensorsDType.I64 => "I64",
        SafetensorsDType.I32 => "I32",
        SafetensorsDType.U8 => "U8",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static int ElementSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.BF16 or SafetensorsDType.F16 => 2,
        SafetensorsDType.I64 => 8,
        SafetensorsDType.U8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>"[3, 4]": the spelling used in every shape message.</summary>
    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    public static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>One tensor of a safetensors file. <paramref name="Offset"/> is relative to the start of the data section.</summary>
public sealed record TensorInfo(string Name, SafetensorsDType DType, long[] Shape, long Offset, long Length)
{
    /// <summary>Number of elements (product of the shape; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (long d in Shape) count *= d;
            return count;
        }
    }
}
