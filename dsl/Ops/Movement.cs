namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>Same data, new shape (row-major order unchanged). One entry may be −1: inferred from the rest.</summary>
    [Op(OpGroup.Movement, "custom", Grad = "dx = dy")]
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        const string op = nameof(Reshape);
        var target = (int[])shape.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == -1)
            {
                if (infer >= 0) throw OpChecks.Error(op, $"more than one -1 in target {Tensor.Format(shape)} for x {OpChecks.S(x)}");
                infer = i;
            }
            else if (target[i] < 0) throw OpChecks.Error(op, $"negative dim in target {Tensor.Format(shape)} for x {OpChecks.S(x)}");
            else known *= target[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || x.Count % known != 0)
                throw OpChecks.Error(op, $"cannot infer -1 in {Tensor.Format(shape)} from x {OpChecks.S(x)} ({x.Count} elements)");
            target[infer] = (int)(x.Count / known);
        }
        else if (known != x.Count)
            throw OpChecks.Error(op, $"target {Tensor.Format(shape)} has {known} elements, x {OpChecks.S(x)} has {x.Count}");
        return new Tensor(target, (double[])x.Data.Clone(), x.DType);
    }

    /// <summary>Swaps two axes and materialises the result in row-major order.</summary>
    [Op(OpGroup.Movement, "custom", Grad = "dx = Transpose(dy, axis0, axis1)")]
    public static Tensor Transpose(Tensor x, int axis0, int axis1)
    {
        int a0 = OpChecks.Axis(nameof(Transpose), x, axis0), a1 = OpChecks.Axis(nameof(Transpose), x, axis1);
        var shape = (int[])x.Shape.Clone();
        (shape[a0], shape[a1]) = (shape[a1], shape[a0]);
        var y = new double[x.Count];
        var strides = Strides(x.Shape);
        var idx = new int[x.Rank];
        for (int o = 0; o < y.Length; o++)
        {
            // idx is the output multi-index; the source index swaps entries a0 and a1.
            int src = 0;
            for (int d = 0; d < x.Rank; d++)
            {
                int sd = d == a0 ? a1 : d == a1 ? a0 : d;
                src += idx[d] * strides[sd];
            }
            y[o] = x.Data[src];
            Increment(idx, shape);
        }
        return new Tensor(shape, y, x.DType);
    }

    /// <summary>The slice at <paramref name="index"/> along <paramref name="axis"/>; that axis is dropped.</summary>
    [Op(OpGroup.Movement, "custom", Grad = "dx = SelectBackward(dy, x, axis, index)")]
    public static Tensor Select(Tensor x, int axis, int index)
    {
        const string op = nameof(Select);
        int a = OpChecks.Axis(op, x, axis);
        if (index < 0 || index >= x.Shape[a])
            throw OpChecks.Error(op, $"index {index} out of range for axis {a} of x {OpChecks.S(x)}");
        int outer = Tensor.Product(x.Shape.AsSpan(0, a)), inner = Tensor.Product(x.Shape.AsSpan(a + 1));
        var y = new double[outer * inner];
        for (int o = 0; o < outer; o++)
            Array.Copy(x.Data, (o * x.Shape[a] + index) * inner, y, o * inner, inner);
        var shape = x.Shape.Take(a).Concat(x.Shape.Skip(a + 1)).ToArray();
        return new Tensor(shape, y, x.DType);
    }

    /// <summary>Joins a and b along <paramref name="axis"/>; all other dims must agree.</summary>
    [Op(OpGroup.Movement, "custom", Grad = "da = ConcatBackwardA(dy, a, axis); db = ConcatBackwardB(dy, a, b, axis)")]
    public static Tensor Concat(Tensor a, Tensor b, int axis)
    {
        const string op = nameof(Concat);
        int ax = OpChecks.Axis(op, a, axis);
        bool ok = a.Rank == b.Rank && a.DType == b.DType;
        for (int d = 0; ok && d < a.Rank; d++) ok = d == ax || a.Shape[d] == b.Shape[d];
        if (!ok) throw OpChecks.Error(op, $"a {OpChecks.S(a)} ({a.DType}) and b {OpChecks.S(b)} ({b.DType}) do not agree off axis {axis}");
        int outer = Tensor.Product(a.Shape.AsSpan(0, ax)), inner = Tensor.Product(a.Shape.AsSpan(ax + 1));
        int ca = a.Shape[ax] * inner, cb = b.Shape[ax] * inner;
        var y = new double[a.Count + b.Count];
        for (int o = 0; o < outer; o++)
        {
            Array.Copy(a.Data, o * ca, y, o * (ca + cb), ca);
            Array.Copy(b.Data, o * cb, y, o * (ca + cb) + ca, cb);
        }
        var shape = (int[])a.Shape.Clone();
        shape[ax] += b.Shape[ax];
        return new Tensor(shape, y, a.DType);
    }

    /// <summary>[*B, Heads·D] → [*B, Heads, D]: splits the last axis into heads (a view).</summary>
    [Op(OpGroup.Movement, "custom", Grad = "dx = dy")]
    public static Tensor SplitHeads(Tensor x, int heads)
    {
        const string op = nameof(SplitHeads);
        OpChecks.MinRank(op, "x", x, 1);
        if (heads <= 0 || x.Shape[^1] % heads != 0)
            throw OpChecks.Error(op, $"last axis of x {OpChecks.S(x)} does not split into {heads} heads");
        var shape = x.Shape[..^1].Concat([heads, x.Shape[^1] / heads]).ToArray();
        return new Tensor(shape, (double[])x.Data.Clone(), x.DType);
    }

    /// <summary>[*B, Heads, D] → [*B, Heads·D]: joins the last two axes (a view).</summary>
    [Op(OpGroup.Movement, "custom", Grad = "dx = dy")]
    public static Tensor MergeHeads(Tensor x)
    {
        OpChecks.MinRank(nameof(MergeHeads), "x", x, 2);
        var shape = x.Shape[..^2].Concat([x.Shape[^2] * x.Shape[^1]]).ToArray();
        return new Tensor(shape, (double[])x.Data.Clone(), x.DType);
    }

    internal static int[] Strides(int[] shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--) { s[d] = acc; acc *= shape[d]; }
        return s;
    }

    private static void Increment(int[] idx, int[] shape)
    {
        for (int d = idx.Length - 1; d >= 0; d--)
        {
            if (++idx[d] < shape[d]) return;
            idx[d] = 0;
        }
    }

    // The copying movement ops' backward ops (Transpose is its own inverse; the views' gradients are views of dy).

    /// <summary>Select's input gradient: zeros the shape of x with dy at <paramref name="index"/> along <paramref name="axis"/>.</summary>
    [Op(OpGroup.Movement, "dy:[*D]; x:[*S] -> [*S]")]
    public static Tensor SelectBackward(Tensor dy, Tensor x, int axis, int index)
    {
        int a = OpChecks.Axis(nameof(SelectBackward), x, axis);
        int outer = Tensor.Product(x.Shape.AsSpan(0, a)), inner = Tensor.Product(x.Shape.AsSpan(a + 1));
        if (dy.Count != outer * inner) throw OpChecks.Error(nameof(SelectBackward), $"dy {OpChecks.S(dy)} does not match x {OpChecks.S(x)} without axis {a}");
        var dx = new double[x.Count];
        for (int o = 0; o < outer; o++)
            Array.Copy(dy.Data, o * inner, dx, (o * x.Shape[a] + index) * inner, inner);
        return new Tensor((int[])x.Shape.Clone(), dx);
    }

    /// <summary>Concat's first input gradient: the leading a-sized part of dy along <paramref name="axis"/>.</summary>
    [Op(OpGroup.Movement, "dy:[*D]; a:[*S] -> [*S]")]
    public static Tensor ConcatBackwardA(Tensor dy, Tensor a, int axis) => ConcatPart(dy, a, 0, axis);

    /// <summary>Concat's second input gradient: the part of dy after a's along <paramref name="axis"/>.</summary>
    [Op(OpGroup.Movement, "dy:[*D]; a:[*A]; b:[*S] -> [*S]")]
    public static Tensor ConcatBackwardB(Tensor dy, Tensor a, Tensor b, int axis) => ConcatPart(dy, b, a.Shape[OpChecks.Axis(nameof(ConcatBackwardB), a, axis)], axis);

    private static Tensor ConcatPart(Tensor dy, Tensor part, int start, int axis)
    {
        int ax = OpChecks.Axis("ConcatBackward", part, axis);
        int outer = Tensor.Product(part.Shape.AsSpan(0, ax)), inner = Tensor.Product(part.Shape.AsSpan(ax + 1));
        int width = part.Shape[ax] * inner, row = dy.Shape[ax] * inner;
        var dx = new double[part.Count];
        for (int o = 0; o < outer; o++)
            Array.Copy(dy.Data, o * row + start * inner, dx, o * width, width);
        return new Tensor((int[])part.Shape.Clone(), dx);
    }
}
