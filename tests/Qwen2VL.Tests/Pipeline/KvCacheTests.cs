using Qwen2VL.Model.Decoder;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Pipeline;

/// <summary>
/// The generated DecoderLayer with a KV cache: a prefill of the first positions followed by one position at a time
/// gives, at every real position, what one pass over the whole sequence gives.
/// </summary>
public sealed class KvCacheTests
{
    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu, 12)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu, 9)]
    [InlineData("d_text_only", DeviceKind.IlgpuCpu, 5)]
    public void PrefillThenStepsMatchesOneFullPass(string caseName, DeviceKind device, int prefill)
    {
        using var ctx = ComputeContext.Create(device);
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        var config = ModelConfig.Load(FixturePaths.Config);
        using var inputs = SafetensorsFile.Open(FixturePaths.Case(caseName, "inputs.safetensors"));
        using var expected = SafetensorsFile.Open(FixturePaths.Case(caseName, "expected.safetensors"));
        var mask = inputs.ReadInt64("attention_mask").Select(m => (int)m).ToArray();
        var shape = inputs.Tensors["input_ids"].Shape;
        int b = (int)shape[0], s = (int)shape[1];
        var hidden = expected.ReadFloat32("hidden_states");
        var h = hidden.Length / (3 * b * s);
        var x = hidden.AsSpan(0, b * s * h).ToArray();
        var pos = expected.ReadInt64("position_ids").Select(p => (int)p).ToArray();
        var layer = new DecoderLayer.Runner(ctx, weights, config, "model.layers.0.");

        var full = ctx.Download(layer.Forward(ctx.Upload(x, b, s, h), ctx.UploadInt(pos, 3, b, s), ctx.UploadInt(mask, b, s)));

        using var cache = new KvCache(ctx, b, s, layer.KvHeads, layer.HeadDim);
        var maskT = ctx.UploadInt(mask, b, s); // covers every position the cache will hold
        var stepped = new float[b * s * h];
        for (var start = 0; start < s; start = cache.Length)
        {
            var count = start == 0 ? prefill : 1;
            var y = ctx.Download(layer.Forward(
                ctx.Upload(Take(x, b, s, h, start, count), b, count, h),
                ctx.UploadInt(TakePositions(pos, b, s, start, count), 3, b, count),
                maskT, cache));
            for (var row = 0; row < b; row++)
                Array.Copy(y, row * count * h, stepped, (row * s + start) * h, count * h);
        }
        Assert.Equal(s, cache.Length);
        var real = mask.Select(m => (long)m).ToArray();
        Compare.Close($"cached decoder layer ({caseName}, {device})", [b, s, h],
            DecoderLayerParityTests.Masked(stepped, real, h), DecoderLayerParityTests.Masked(full, real, h), 1e-5);
    }

    [Fact]
    public void AFullCacheIsAClearError()
    {
        using var ctx = ComputeContext.Create(DeviceKind.Cpu);
        using var cache = new KvCache(ctx, 1, 2, 1, 4);
        var k = ctx.Allocate(1, 3, 1, 4);
        var error = Assert.Throws<ModelException>(() => cache.Append(0, k, k));
        Assert.Contains("capacity of 2", error.Message);
    }

    private static float[] Take(float[] x, int b, int s, int h, int start, int count)
    {
        var result = new float[b * count * h];
        for (var row = 0; row < b; row++)
            Array.Copy(x, (row * s + start) * h, result, row * count * h, count * h);
        return result;
    }

    private static int[] TakePositions(int[] pos, int b, int s, int start, int count)
    {
        var result = new int[3 * b * count];
        for (var axis = 0; axis < 3; axis++)
            for (var row = 0; row < b; row++)
                Array.Copy(pos, (axis * b + row) * s + start, result, (axis * b + row) * count, count);
        return result;
    }
}
