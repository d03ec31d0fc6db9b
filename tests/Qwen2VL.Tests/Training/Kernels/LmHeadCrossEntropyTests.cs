using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;
using Xunit;

namespace Qwen2VL.Tests.Training.Kernels;

using Reference = Qwen2VL.Tests.Runtime.Reference;

public class LmHeadCrossEntropyTests
{
    private const int T = 6, H = 7, V = 37;
    private const double Tolerance = 1e-5;
    private static readonly int[] Targets = [3, LmHeadCrossEntropy.IgnoreIndex, 36, 0, 17, 8];

    /// <summary>Explicit float64 logits: loss sum, count, dHidden and dWeight of gradScale · loss sum.</summary>
    private static (double Loss, int Count, double[] DHidden, double[] DWeight) Expected(float[] hidden, float[] weight, float gradScale)
    {
        double loss = 0;
        int count = 0;
        var dh = new double[T * H];
        var dw = new double[V * H];
        for (int t = 0; t < T; t++)
        {
            if (Targets[t] == LmHeadCrossEntropy.IgnoreIndex) continue;
            var logits = new double[V];
            for (int c = 0; c < V; c++)
                for (int d = 0; d < H; d++) logits[c] += (double)hidden[t * H + d] * weight[c * H + d];
            double max = logits.Max(), lse = max + Math.Log(logits.Sum(x => Math.Exp(x - max)));
            loss += lse - logits[Targets[t]];
            count++;
            for (int c = 0; c < V; c++)
            {
                double g = gradScale * (Math.Exp(logits[c] - lse) - (c == Targets[t] ? 1 : 0));
                for (int d = 0; d < H; d++)
                {
                    dh[t * H + d] += g * weight[c * H + d];
                    dw[c * H + d] += g * hidden[t * H + d];
                }
            }
        }
        return (loss, count, dh, dw);
    }

    // chunk 0 = the default (one chunk here); 8 leaves a partial last chunk of 5 columns; 1 is the extreme.
    [Theory]
    [InlineData(DeviceKind.Cpu, 0)]
    [InlineData(DeviceKind.Cpu, 8)]
    [InlineData(DeviceKind.Cpu, 1)]
    [InlineData(DeviceKind.IlgpuCpu, 0)]
    [InlineData(DeviceKind.IlgpuCpu, 8)]
    public void MatchesExplicitLogitsInFloat64(DeviceKind kind, int chunk)
    {
        float[] hidden = Reference.Random(T * H, 91, 2f), weight = Reference.Random(V * H, 92, 2f), dw0 = Reference.Random(V * H, 93);
        const float gradScale = 0.2f;
        var expected = Expected(hidden, weight, gradScale);

        using ComputeContext ctx = ComputeContext.Create(kind);
        using DeviceTensor th = ctx.Upload(hidden, T, H), tw = ctx.Upload(weight, V, H);
        LmHeadCrossEntropy.Forward(ctx, th, tw, Targets, out float lossSum, out int count, chunk);
        Assert.Equal(expected.Count, count);
        Reference.AssertClose($"loss {kind} chunk {chunk}", [expected.Loss], [lossSum], Tolerance);

        using DeviceTensor dh = AttentionBackwardTests.Garbage(ctx, T * H).Reshape(T, H), dw = ctx.Upload(dw0, V, H);
        LmHeadCrossEntropy.Backward(ctx, th, tw, Targets, gradScale, dh, dw, chunk);
        Reference.AssertClose($"dHidden {kind} chunk {chunk}", expected.DHidden, ctx.Download(dh), Tolerance);
        // dWeight is accumulated into.
        Reference.AssertClose($"dWeight {kind} chunk {chunk}", expected.DWeight.Select((g, i) => g + dw0[i]).ToArray(), ctx.Download(dw), Tolerance);
    }

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void GradientsMatchFiniteDifferencesOfTheForward(DeviceKind kind)
    {
        float[] hidden = Reference.Random(T * H, 94), weight = Reference.Random(V * H, 95);
        using ComputeContext ctx = ComputeContext.Create(kind);
        double Loss()
        {
            using DeviceTensor th = ctx.Upload(hidden, T, H), tw = ctx.Upload(weight, V, H);
            LmHeadCrossEntropy.Forward(ctx, th, tw, Targets, out float lossSum, out _, 8);
            return lossSum;
        }
        using DeviceTensor th = ctx.Upload(hidden, T, H), tw = ctx.Upload(weight, V, H), dh = ctx.Allocate(T, H), dw = ctx.Allocate(V, H);
        LmHeadCrossEntropy.Backward(ctx, th, tw, Targets, 1f, dh, dw, 8);
        int samples = kind == DeviceKind.Cpu ? 30 : 6;
        FiniteDifference.Check($"dHidden {kind}", hidden, FiniteDifference.ToDouble(ctx.Download(dh)), Loss, samples, 7);
        FiniteDifference.Check($"dWeight {kind}", weight, FiniteDifference.ToDouble(ctx.Download(dw)), Loss, samples, 8);
    }

    [Fact]
    public void TargetOutsideTheVocabularyIsAOneLineModelError()
    {
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor th = ctx.Allocate(2, H), tw = ctx.Allocate(V, H);
        var e = Assert.Throws<ModelException>(() => LmHeadCrossEntropy.Forward(ctx, th, tw, [1, V], out _, out _));
        Assert.Contains("outside the vocabulary", e.Message);
    }
}
