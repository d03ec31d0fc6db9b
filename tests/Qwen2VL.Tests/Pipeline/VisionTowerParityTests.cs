using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Pipeline;

/// <summary>The patch-embedding GEMM and the whole generated vision tower (blocks loop + merger) against transformers.</summary>
public sealed class VisionTowerParityTests
{
    [Theory]
    [InlineData("a_image_text", "image", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", "image", DeviceKind.Cpu)]
    [InlineData("c_video_text", "video", DeviceKind.Cpu)]
    [InlineData("a_image_text", "image", DeviceKind.IlgpuCpu)]
    public void PatchEmbeddingIsAGemmOverPixelValues(string caseName, string kind, DeviceKind device)
    {
        using var ctx = ComputeContext.Create(device);
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        using var inputs = SafetensorsFile.Open(FixturePaths.Case(caseName, "inputs.safetensors"));
        using var expected = SafetensorsFile.Open(FixturePaths.Case(caseName, "expected.safetensors"));
        var pixels = inputs.ReadFloat32(kind == "image" ? "pixel_values" : "pixel_values_videos");
        var conv = weights.Info("visual.patch_embed.proj.weight").Shape;
        int embed = (int)conv[0], inDim = (int)(conv[1] * conv[2] * conv[3] * conv[4]), n = pixels.Length / inDim;
        var w = weights.Load(ctx, "visual.patch_embed.proj.weight", conv.Select(d => (int)d).ToArray()).Reshape(embed, inDim);
        var x = ctx.Upload(pixels, n, inDim);
        var y = ctx.Allocate(n, embed);
        ctx.Gemm(x, w, y, n, embed, inDim);
        Compare.Close($"{kind}_vision_patch_embed ({caseName}, {device})", y.Shape, ctx.Download(y),
            expected.ReadFloat32($"{kind}_vision_patch_embed"), 1e-5);
    }

    [Theory]
    [InlineData("a_image_text", "image", DeviceKind.Cpu)]
    [InlineData("b_batch2_two_images_leftpad", "image", DeviceKind.Cpu)]
    [InlineData("c_video_text", "video", DeviceKind.Cpu)]
    [InlineData("a_image_text", "image", DeviceKind.IlgpuCpu)]
    public void TowerGivesTheEmbeddingsScatteredIntoTheText(string caseName, string kind, DeviceKind device)
    {
        using var ctx = ComputeContext.Create(device);
        using var weights = WeightStore.OpenFile(FixturePaths.Model);
        var config = ModelConfig.Load(FixturePaths.Config);
        using var inputs = SafetensorsFile.Open(FixturePaths.Case(caseName, "inputs.safetensors"));
        using var expected = SafetensorsFile.Open(FixturePaths.Case(caseName, "expected.safetensors"));
        var grids = VisionBlockParityTests.Grids(inputs.ReadInt64(kind == "image" ? "image_grid_thw" : "video_grid_thw"));
        var pos = VisionGeometry.RotaryPositions(grids, 2);
        var cu = VisionGeometry.CuSeqlens(grids);
        var pixels = inputs.ReadFloat32(kind == "image" ? "pixel_values" : "pixel_values_videos");
        var n = pos.Length / 2;

        var tower = new VisionTower.Runner(ctx, weights, config, "visual.");
        var y = tower.Forward(ctx.Upload(pixels, n, pixels.Length / n), ctx.UploadInt(pos, n, 2), ctx.UploadInt(cu, cu.Length));
        Compare.Close($"{kind}_embeds ({caseName}, {device})", y.Shape, ctx.Download(y), expected.ReadFloat32($"{kind}_embeds"), 1e-5);
    }
}
