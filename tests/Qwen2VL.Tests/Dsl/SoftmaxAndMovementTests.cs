using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

public class SoftmaxAndMovementTests
{
    [Fact]
    public void Softmax_IsExpOverSumAndRowsSumToOne()
    {
        var x = new Tensor([2, 3], [1, 2, 3, 1000, 1000, 999]);
        var y = Ops.Softmax(x);
        double z = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        TensorAssert.Close([Math.Exp(1) / z, Math.Exp(2) / z, Math.Exp(3) / z], y.Data[..3], 1e-15);
        // Large logits do not overflow: exp(0), exp(0), exp(-1) normalised.
        double z2 = 2 + Math.Exp(-1);
        TensorAssert.Close([1 / z2, 1 / z2, Math.Exp(-1) / z2], y.Data[3..], 1e-15);
        Assert.Equal(1.0, y.Data[..3].Sum(), 14);
    }

    [Fact]
    public void Reshape_InfersOneAxisAndRejectsBadTargets()
    {
        var x = TensorAssert.Random(3, 2, 6);
        var y = Ops.Reshape(x, 3, -1);
        Assert.Equal([3, 4], y.Shape);
        Assert.Equal(x.Data, y.Data);
        Assert.Throws<ArgumentException>(() => Ops.Reshape(x, -1, -1));
        var e = Assert.Throws<ArgumentException>(() => Ops.Reshape(x, 5, -1));
        Assert.Contains("Reshape", e.Message);
        Assert.Contains("[2, 6]", e.Message);
        Assert.Throws<ArgumentException>(() => Ops.Reshape(x, 4, 4));
    }

    [Fact]
    public void Transpose_SwapsAxesAndMaterialises()
    {
        var x = TensorAssert.Random(4, 2, 3, 4);
        var y = Ops.Transpose(x, 0, 2);
        Assert.Equal([4, 3, 2], y.Shape);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < 4; c++)
                    Assert.Equal(x[a, b, c], y[c, b, a]);
        Assert.Throws<ArgumentException>(() => Ops.Transpose(x, 0, 3));
    }

    [Fact]
    public void Select_DropsTheAxis()
    {
        var x = new Tensor([2, 3, 2], Enumerable.Range(0, 12).Select(i => (double)i).ToArray());
        TensorAssert.Close([2, 3, 8, 9], Ops.Select(x, 1, 1), 0, 2, 2);
        TensorAssert.Close([6, 7, 8, 9, 10, 11], Ops.Select(x, 0, 1), 0, 3, 2);
        TensorAssert.Close([1, 3, 5, 7, 9, 11], Ops.Select(x, 2, 1), 0, 2, 3);
        var e = Assert.Throws<ArgumentException>(() => Ops.Select(x, 1, 3));
        Assert.Contains("Select", e.Message);
    }

    [Fact]
    public void Concat_JoinsAlongAxis()
    {
        var a = new Tensor([2, 1], [1, 2]);
        var b = new Tensor([2, 2], [3, 4, 5, 6]);
        TensorAssert.Close([1, 3, 4, 2, 5, 6], Ops.Concat(a, b, 1), 0, 2, 3);
        TensorAssert.Close([1, 2, 3, 4, 5, 6], Ops.Concat(Ops.Reshape(a, 1, 2), Ops.Reshape(b, 2, 2), 0), 0, 3, 2);
        Assert.Throws<ArgumentException>(() => Ops.Concat(a, b, 0));
    }

    [Fact]
    public void SplitAndMergeHeads_AreInverseViews()
    {
        var x = TensorAssert.Random(5, 2, 3, 8);
        var s = Ops.SplitHeads(x, 4);
        Assert.Equal([2, 3, 4, 2], s.Shape);
        Assert.Equal(x[1, 2, 5], s[1, 2, 2, 1]);
        var m = Ops.MergeHeads(s);
        Assert.Equal(x.Shape, m.Shape);
        Assert.Equal(x.Data, m.Data);
        Assert.Throws<ArgumentException>(() => Ops.SplitHeads(x, 3));
    }

    [Fact]
    public void Embedding_LooksUpRowsAndRejectsOutOfRangeIds()
    {
        var table = new Tensor([3, 2], [0, 1, 10, 11, 20, 21]);
        var ids = Tensor.FromInt64([2, 0, 1, 2], 2, 2);
        TensorAssert.Close([20, 21, 0, 1, 10, 11, 20, 21], Ops.Embedding(ids, table), 0, 2, 2, 2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Embedding(Tensor.FromInt64([1, 3], 2), table));
        Assert.Contains("3", e.Message);
        Assert.Contains("[0, 3)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Embedding(Tensor.FromInt64([-1], 1), table));
    }

    [Fact]
    public void Tensor_ChecksDataLengthAndIndexes()
    {
        Assert.Throws<ArgumentException>(() => new Tensor([2, 2], new double[3]));
        var t = Tensor.FromFloat([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        Assert.Equal(6.0, t[1, 2]);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], t.ToFloatArray());
        Assert.Throws<IndexOutOfRangeException>(() => t[2, 0]);
    }
}
