namespace Qwen2VL.Dsl;

/// <summary>
/// A tensor as the DSL sees it. Executed as plain C#, it is a dense float64 reference tensor (row-major);
/// the generator only reads how tensors flow through <c>Forward</c>.
/// </summary>
public sealed class Tensor
{
    public Tensor(int[] shape, double[] data, DType dtype = DType.F32)
    {
        Shape = shape;
        Data = data;
        DType = dtype;
    }

    public int[] Shape { get; }
    public double[] Data { get; }
    public DType DType { get; }

    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);
}
