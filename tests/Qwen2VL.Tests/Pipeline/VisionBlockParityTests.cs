using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Pipeline;

/// <summary>
/// The generated VisionBlock runner against Hugging Face's numbers (case a): block 0 applied to the patch embedding
/// gives image_vision_block_0, block 1 gives image_vision_block_1, within 1e-5, through the CPU kernels and through
/// the ILGPU kernels on ILGPU's CPU accelerator.
/// </summary>
public sealed class VisionBlockParityTests
{
    private const string Case = "a_image_text";

    [Theory]
    [InlineData(DeviceKind.Cpu)]
    [InlineData(DeviceKind.IlgpuCpu)]
    public void BlocksMatchTransformers(DeviceKind kind)
    {
        using var ctx = ComputeContext.Create(kind);
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        var config = ModelConfig.Load(FixturePaths.Config);
        using var inputs = SafetensorsFile.Open(FixturePaths.Case(Case, "inputs.safetensors"));
        using var expected = SafetensorsFile.Open(FixturePaths.Case(Case, "expected.safetensors"));

        var grids = Grids(inputs.ReadInt64("image_grid_thw"));
        var pos = VisionGeometry.RotaryPositions(grids, 2);
        var cu = VisionGeometry.CuSeqlens(grids);
        var embed = expected.ReadFloat32("image_vision_patch_embed");
        var n = pos.Length / 2;
        var x = ctx.Upload(embed, n, embed.Length / n);
        var posT = ctx.UploadInt(pos, n, 2);
        var cuT = ctx.UploadInt(cu, cu.Length);

        for (var block = 0; block < 2; block++)
        {
            var runner = new VisionBlock.Runner(ctx, weights, config, $"visual.blocks.{block}.");
            var y = runner.Forward(x, posT, cuT);
            var actual = ctx.Download(y);
            Compare.Close($"image_vision_block_{block} ({kind})", y.Shape, actual, expected.ReadFloat32($"image_vision_block_{block}"), 1e-5);
            x = ctx.Upload(actual, y.Shape);
        }
    }

    internal static List<(int t, int h, int w)> Grids(long[] thw) =>
        Enumerable.Range(0, thw.Length / 3).Select(i => ((int)thw[3 * i], (int)thw[3 * i + 1], (int)thw[3 * i + 2])).ToList();
}
