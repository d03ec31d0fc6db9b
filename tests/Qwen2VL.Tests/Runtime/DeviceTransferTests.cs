using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Processing;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Compiled;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// Issue 9 step 5, "stay on the device": with <see cref="ComputeContext.Transfers"/> counting every byte between the
/// host and the device, a prefill, a decode step and a training step move exactly their inputs in (ids, positions,
/// masks, pixels and the vision geometry, labels) and only the logits of the rows asked for, or the loss, out — no
/// activation — and a warm step allocates no device buffer. On the CPU kernels and on ILGPU's CPU accelerator.
/// </summary>
public sealed class DeviceTransferTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void DecodeWithCacheMovesOnlyItsInputsAndTheAskedLogits(DeviceKind device)
    {
        using var golden = new GoldenCase("a_image_text");
        using var model = Qwen2VLModel.Load(FixturePaths.Root, device);
        var inputs = golden.Inputs;
        int b = inputs.Batch, s = inputs.Seq;
        var images = inputs.Images!;
        using var cache = model.CreateCache(b, s + 4);
        var counter = model.Context.Transfers;
        counter.Recording = true;

        counter.Reset();
        var start = model.Embed(inputs);
        var logits = model.DecodeWithCache(cache, start.Embeddings, start.PositionIds, start.AttentionMask, s);
        Assert.Equal(b * model.Vocab, logits.Length);
        long pixels = 4L * images.PixelValues.Length, geometry = 4L * (images.Rows * 2 + images.Grids.Count + 1);
        long ids = 4L * b * s, imageMask = 4L * b * s, positions = 4L * 3 * b * s, mask = 4L * b * s;
        Report("prefill", counter);
        Assert.Equal(ids + pixels + geometry + imageMask + positions + mask, counter.HostToDeviceBytes);
        Assert.Equal(4L * b * model.Vocab, counter.DeviceToHostBytes);

        long next = ArgMax(logits);
        for (int step = 0; step < 2; step++)
        {
            long allocations = model.Context.Allocations;
            counter.Reset();
            logits = model.DecodeWithCache(cache, [next], [s + step, s + step, s + step], [1L], 1);
            Report($"decode step {step}", counter);
            // In: one id, its three M-RoPE positions and its mask entry. Out: the logits of the one row.
            Assert.Equal(4L * (1 + 3 + 1), counter.HostToDeviceBytes);
            Assert.Equal(3, counter.Uploads);
            Assert.Equal(4L * model.Vocab, counter.DeviceToHostBytes);
            Assert.Equal(1, counter.Downloads);
            if (step > 0)
                Assert.Equal(allocations, model.Context.Allocations);  // a warm step reuses every buffer
            next = ArgMax(logits);
        }
    }

    [Theory]
    [InlineData(DeviceKind.Cpu, false)]
    [InlineData(DeviceKind.Cpu, true)]
    [InlineData(DeviceKind.IlgpuCpu, false)]
    public void TrainingStepMovesOnlyItsInputsAndTheLoss(DeviceKind device, bool recompute)
    {
        using var golden = new GoldenCase("a_image_text");
        using var model = Qwen2VLModel.Load(FixturePaths.Root, device);
        model.Recompute = recompute;
        using var grads = model.CreateGradients();
        var inputs = golden.Inputs;
        int b = inputs.Batch, s = inputs.Seq;
        var images = inputs.Images!;
        var first = model.ForwardBackward(inputs, grads);
        var counter = model.Context.Transfers;
        counter.Recording = true;
        long allocations = model.Context.Allocations;

        counter.Reset();
        var second = model.ForwardBackward(inputs, grads);
        Report($"training step (recompute {recompute})", counter);
        Assert.Equal(first.Loss, second.Loss);
        long pixels = 4L * images.PixelValues.Length, geometry = 4L * (images.Rows * 2 + images.Grids.Count + 1);
        long ids = 4L * b * s, imageMask = 4L * b * s, positions = 4L * 3 * b * s, mask = 4L * b * s, labels = 4L * b * s;
        Assert.Equal(ids + pixels + geometry + imageMask + positions + mask + labels, counter.HostToDeviceBytes);
        Assert.Equal(sizeof(float), counter.DeviceToHostBytes);              // the loss sum
        Assert.Equal(allocations, model.Context.Allocations);               // the second step reuses every buffer
    }

    [Fact]
    public void CounterCountsEachDirectionAndResets()
    {
        using var ctx = ComputeContext.Create(DeviceKind.Cpu);
        using var t = ctx.Upload(new float[10], 2, 5);
        using var i = ctx.UploadInt(new int[3], 3);
        ctx.CopyFrom(new float[5], t.Slice(5, 5, 5));
        Assert.Equal(4L * (10 + 3 + 5), ctx.Transfers.HostToDeviceBytes);
        Assert.Equal(3, ctx.Transfers.Uploads);
        ctx.Download(t);
        ctx.DownloadInt(i);
        Assert.Equal(4L * (10 + 3), ctx.Transfers.DeviceToHostBytes);
        Assert.Equal(2, ctx.Transfers.Downloads);
        ctx.Transfers.Reset();
        Assert.Equal(0, ctx.Transfers.HostToDeviceBytes + ctx.Transfers.DeviceToHostBytes + ctx.Transfers.Uploads + ctx.Transfers.Downloads);
        using var d = ctx.Allocate(4);
        ctx.Copy(t.Slice(0, 4, 4), d);                                      // on the device: not a transfer
        Assert.Equal(0, ctx.Transfers.HostToDeviceBytes + ctx.Transfers.DeviceToHostBytes);
    }

    private void Report(string what, TransferCounter counter)
    {
        log.WriteLine($"{what}: {counter}");
        foreach (var t in counter.Log)
            log.WriteLine($"  {(t.Direction == TransferDirection.HostToDevice ? "in " : "out")} {t.Bytes,8} B  {t.What}");
    }

    private static long ArgMax(float[] row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }
}
