using Qwen2VL.Model.Decoder;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Pipeline;

/// <summary>
/// The generated DecoderLayer runner (RMSNorm, GQA with q/k/v bias, M-RoPE, causal + padding mask, SwiGLU) maps
/// hidden_states[k] to hidden_states[k+1] as transformers does. Compared where attention_mask is 1.
/// </summary>
public sealed class DecoderLayerParityTests
{
    [Theory]
    [InlineData("a_image_text", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", DeviceKind.Cpu)]
    [InlineData("c_video_text", DeviceKind.Cpu)]
    [InlineData("d_text_only", DeviceKind.Cpu)]
    [InlineData("a_image_text", DeviceKind.IlgpuCpu)]
    public void EachLayerMatchesTransformers(string caseName, DeviceKind device)
    {
        using var ctx = ComputeContext.Create(device);
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        var config = ModelConfig.Load(FixturePaths.Config);
        using var inputs = SafetensorsFile.Open(FixturePaths.Case(caseName, "inputs.safetensors"));
        using var expected = SafetensorsFile.Open(FixturePaths.Case(caseName, "expected.safetensors"));
        var mask = inputs.ReadInt64("attention_mask");
        var ids = inputs.Tensors["input_ids"].Shape;
        int b = (int)ids[0], s = (int)ids[1];
        var hidden = expected.ReadFloat32("hidden_states");
        var h = hidden.Length / (3 * b * s);
        var layers = (int)expected.Tensors["hidden_states"].Shape[0] - 1;
        var pos = ctx.UploadInt(expected.ReadInt64("position_ids").Select(p => (int)p).ToArray(), 3, b, s);
        var maskT = ctx.UploadInt(mask.Select(m => (int)m).ToArray(), b, s);

        // hidden_states[L] is after the final norm, so layers 0..L-2 are checked against hidden_states[k+1] and the
        // last layer against last_layer_output_prenorm.
        var x = ctx.Upload(hidden.AsSpan(0, b * s * h), b, s, h);
        for (var layer = 0; layer < layers; layer++)
        {
            var runner = new DecoderLayer.Runner(ctx, weights, config, $"model.layers.{layer}.");
            var y = runner.Forward(x, pos, maskT);
            var actual = ctx.Download(y);
            var want = layer < layers - 1
                ? hidden.AsSpan((layer + 1) * b * s * h, b * s * h).ToArray()
                : expected.ReadFloat32("last_layer_output_prenorm");
            Compare.Close($"decoder layer {layer} ({caseName}, {device})", y.Shape, Masked(actual, mask, h), Masked(want, mask, h), 1e-5);
            x = ctx.Upload(actual, y.Shape);
        }
    }

    /// <summary>Zeroes rows at padding positions: their values depend on the mask implementation.</summary>
    internal static float[] Masked(float[] values, long[] mask, int width)
    {
        var result = (float[])values.Clone();
        for (var t = 0; t < mask.Length; t++)
            if (mask[t] == 0)
                Array.Clear(result, t * width, width);
        return result;
    }
}
