using Qwen2VL.Model.Compiled;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Xunit;

namespace Qwen2VL.Tests.Compiled;

/// <summary>Bad inputs give a one-line <see cref="ModelException"/> that names the problem.</summary>
public sealed class ModelInputErrorTests : IDisposable
{
    private readonly Qwen2VLModel _model = Qwen2VLModel.Load(FixturePaths.Root, DeviceKind.Cpu);
    private readonly GoldenCase _golden = new("a_image_text");

    private string Fails(ForwardInputs inputs)
    {
        var message = Assert.ThrowsAny<ModelException>(() => _model.Forward(inputs)).Message;
        Assert.DoesNotContain('\n', message);
        return message;
    }

    [Fact]
    public void IdOutsideTheVocabularyIsNamed()
    {
        var ids = (long[])_golden.Inputs.InputIds.Clone();
        ids[3] = 9999;
        var message = Fails(_golden.Inputs with { InputIds = ids });
        Assert.Contains("9999", message);
        Assert.Contains("[0, 3]", message);
        Assert.Contains("512", message);
    }

    [Fact]
    public void ImageTokenCountMismatchNamesBothCounts()
    {
        // One image token turned into text: 23 tokens for the image's 24 embeddings.
        var ids = (long[])_golden.Inputs.InputIds.Clone();
        int at = Array.IndexOf(ids, (long)_model.TokenIds.Image);
        ids[at] = 7;
        var message = Fails(_golden.Inputs with { InputIds = ids });
        int tokens = _golden.Inputs.InputIds.Count(id => id == _model.TokenIds.Image);
        Assert.Contains($"{tokens - 1} image tokens", message);
        Assert.Contains($"{tokens} image embeddings", message);
    }

    [Fact]
    public void GridsThatDoNotCoverThePixelRowsAreNamed()
    {
        var images = _golden.Inputs.Images!;
        var g = images.Grids[0];
        var message = Fails(_golden.Inputs with { Images = images with { Grids = [g with { H = g.H + 2 }] } });
        Assert.Contains("image_grid_thw", message);
        Assert.Contains($"{images.Rows} rows", message);
    }

    [Fact]
    public void MissingImagesForImageTokensAreNamed()
    {
        Assert.Contains("image tokens", Fails(_golden.Inputs with { Images = null }));
    }

    [Fact]
    public void MaskValuesOtherThanZeroAndOneAreRejected()
    {
        var mask = _golden.Mask;
        mask[0] = 2;
        Assert.Contains("attention_mask[0, 0] = 2", Fails(_golden.Inputs with { AttentionMask = mask }));
    }

    public void Dispose()
    {
        _model.Dispose();
        _golden.Dispose();
    }
}
