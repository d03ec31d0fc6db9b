using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// The backward pieces that read bf16 weights (<c>forward --dtype bf16 --grads</c>): <see cref="ComputeContext.GemmNN"/>
/// with a bf16 b (dx = dy·W), against a float64 reference from the same widened weights, odd sizes (the AVX2 widening's
/// tail, the ILGPU tile edges), overwrite and accumulate; and <see cref="ComputeContext.ScatterAddRows"/>, the bf16
/// embedding table's f32 gradient, with repeated ids.
/// </summary>
public class Bf16GemmBackwardTests
{
    [Theory]
    [InlineData(DeviceKind.Cpu, 1, 37, 70, false)]
    [InlineData(DeviceKind.Cpu, 19, 13, 9, true)]
    [InlineData(DeviceKind.Cpu, 70, 130, 33, false)]
    [InlineData(DeviceKind.IlgpuCpu, 3, 17, 40, true)]
    [InlineData(DeviceKind.IlgpuCpu, 33, 21, 18, false)]
    public void GemmNNWithBf16WeightMatchesDoubleReference(DeviceKind device, int m, int n, int k, bool accumulate)
    {
        float[] a = Reference.Random(m * k, 51), c0 = Reference.Random(m * n, 52);
        ushort[] w = Reference.Random(k * n, 53).Select(v => (ushort)(BitConverter.SingleToInt32Bits(Bf16.Round(v)) >>> 16)).ToArray();
        using ComputeContext ctx = ComputeContext.Create(device);
        using DeviceTensor ta = ctx.Upload(a, m, k), tc = ctx.Upload(c0, m, n);
        using DeviceTensor tw = device == DeviceKind.Cpu ? ctx.WrapBf16(w, k, n) : ctx.UploadBf16(w, k, n);
        Assert.True(tw.IsBf16);
        ctx.GemmNN(ta, tw, tc, m, n, k, accumulate);
        float[] c = ctx.Download(tc);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double exact = accumulate ? c0[i * n + j] : 0, magnitude = Math.Abs(exact);
                for (int p = 0; p < k; p++)
                {
                    double term = (double)a[i * k + p] * BitConverter.Int32BitsToSingle(w[p * n + j] << 16);
                    exact += term;
                    magnitude += Math.Abs(term);
                }
                double bound = (k + 2) * Math.Pow(2, -24) * magnitude + 1e-30;
                Assert.True(Math.Abs(c[i * n + j] - exact) <= bound, $"c[{i},{j}] = {c[i * n + j]}, exact {exact} (bound {bound:E2})");
            }
    }

    [Fact]
    public void GemmTNRefusesABf16Operand()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor a = ctx.Upload(new float[4], 2, 2), c = ctx.Allocate(2, 2), w = ctx.WrapBf16(new ushort[4], 2, 2);
        Assert.Throws<ArgumentException>(() => ctx.GemmTN(a, w, c, 2, 2, 2, accumulate: false));
        Assert.Throws<ArgumentException>(() => ctx.GemmNN(w, a, c, 2, 2, 2, accumulate: false));
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void ScatterAddRowsAddsEveryRowIntoItsIdIncludingRepeats(DeviceKind device)
    {
        const int vocab = 7, width = 5;
        int[] ids = [3, 0, 3, 6, 3];
        float[] rows = Reference.Random(ids.Length * width, 54), grad0 = Reference.Random(vocab * width, 55);
        using ComputeContext ctx = ComputeContext.Create(device);
        using DeviceTensor tr = ctx.Upload(rows, ids.Length, width), ti = ctx.UploadInt(ids, ids.Length), tg = ctx.Upload(grad0, vocab, width);
        ctx.ScatterAddRows(tr, ti, tg);
        float[] grad = ctx.Download(tg);
        for (int v = 0; v < vocab; v++)
            for (int j = 0; j < width; j++)
            {
                double want = grad0[v * width + j];
                for (int r = 0; r < ids.Length; r++)
                    if (ids[r] == v) want += rows[r * width + j];
                Assert.True(Math.Abs(grad[v * width + j] - want) <= 1e-6, $"grad[{v},{j}] = {grad[v * width + j]}, want {want}");
            }
    }
}
