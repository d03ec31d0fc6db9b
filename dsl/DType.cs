namespace Qwen2VL.Dsl;

/// <summary>Element types a tensor can have. BF16 is a storage type: arithmetic is done in f32.</summary>
public enum DType
{
    F32,
    BF16,
    I64,
}
