using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;

namespace Qwen2VL.Tests.Compiled;

/// <summary>A chat turn with an image becomes the processor's pixels, the template and one pad per merged patch.</summary>
public sealed class ChatInputsTests
{
    [Fact]
    public void ImageTurnHasTheFixturePixelsAndOnePadPerMergedPatch()
    {
        var tokenizer = Qwen2Tokenizer.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny-tokenizer", "tokenizer.json"));
        var processor = ImageProcessor.Load(Path.Combine(FixturePaths.Root, "preprocessor_config.json"));
        var image = RgbImage.Load(FixturePaths.Case("a_image_text", "image_0.png"));
        var inputs = ChatInputs.Build(tokenizer, processor, [image], [], "Describe it.");

        using var fixture = SafetensorsFile.Open(FixturePaths.Case("a_image_text", "inputs.safetensors"));
        Assert.Equal(fixture.ReadFloat32("pixel_values"), inputs.Images!.PixelValues);
        Assert.Equal([(1L, 6L, 4L)], inputs.Images.Grids.Select(g => ((long)g.T, (long)g.H, (long)g.W)));
        Assert.Equal(6, inputs.InputIds.Count(id => id == 502));
        string text = tokenizer.Decode(inputs.InputIds.Select(id => (int)id));
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>"
            + string.Concat(Enumerable.Repeat("<|image_pad|>", 6)) + "<|vision_end|>Describe it.<|im_end|>\n<|im_start|>assistant\n", text);
        Assert.Equal([504L, 505L], ChatInputs.StopIds(tokenizer, [504]));
    }
}
