namespace Qwen2VL.Dsl;

/// <summary>
/// A tensor as the DSL sees it. Executed as plain C#, it is a dense float64 reference tensor (row-major);
/// the generator only reads how tensors flow through <c>Forward</c>. Integer tensors (<see cref="DType.I64"/>)
/// hold their values as doubles too (exact below 2^53, far beyond any id or position).
/// </summary>
public sealed class Tensor
{
    public Tensor(int[] shape, double[] data, DType dtype = DType.F32)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"Tensor: negative dim in shape {Format(shape)}");
            n *= d;
        }
        if (n != data.Length)
            throw new ArgumentException($"Tensor: shape {Format(shape)} needs {n} values but {data.Length} were given");
        Shape = shape;
        Data = data;
        DType = dtype;
    }

    public int[] Shape { get; }
    public double[] Data { get; }
    public DType DType { get; }

    public int Rank => Shape.Length;
    public int Count => Data.Length;

    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);

    /// <summary>The element at a full multi-index (row-major).</summary>
    public double this[params int[] index]
    {
        get => Data[Offset(index)];
        set => Data[Offset(index)] = value;
    }

    public static Tensor Zeros(params int[] shape) => new(shape, new double[Product(shape)]);

    public static Tensor FromFloat(float[] data, params int[] shape) =>
        new(shape, Array.ConvertAll(data, v => (double)v));

    public static Tensor FromDouble(double[] data, params int[] shape) => new(shape, (double[])data.Clone());

    /// <summary>An integer tensor (ids, positions, masks, segment bounds).</summary>
    public static Tensor FromInt64(long[] data, params int[] shape) =>
        new(shape, Array.ConvertAll(data, v => (double)v), DType.I64);

    public float[] ToFloatArray() => Array.ConvertAll(Data, v => (float)v);

    public long[] ToInt64Array() => Array.ConvertAll(Data, v => (long)v);

    public static int Product(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        return checked((int)n);
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public override string ToString() => $"Tensor{Format(Shape)} {DType}";

    private int Offset(int[] index)
    {
        if (index.Length != Shape.Length)
            throw new ArgumentException($"Tensor: index of rank {index.Length} into shape {Format(Shape)}");
        int off = 0;
        for (int i = 0; i < index.Length; i++)
        {
            if ((uint)index[i] >= (uint)Shape[i])
                throw new IndexOutOfRangeException($"Tensor: index {Format(index)} outside shape {Format(Shape)}");
            off = off * Shape[i] + index[i];
        }
        return off;
    }
}
