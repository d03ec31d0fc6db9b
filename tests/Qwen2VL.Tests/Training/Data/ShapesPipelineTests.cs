using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Model.Training.Synthetic;
using Xunit;

namespace Qwen2VL.Tests.Training.Data;

/// <summary>The synthetic set through the whole data path: JSONL reader, shapes tokenizer, encoder, batching, packing.</summary>
public sealed class ShapesPipelineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-shapes-pipe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ShapesSet_EncodesWithItsTokenizer_LabelsAreTheAnswerAndImEnd()
    {
        var items = ShapesDataset.Generate(16, 9, _dir);
        var tokenizerPath = Path.Combine(_dir, "tokenizer.json");
        ShapesTokenizer.Build(tokenizerPath);
        var tokenizer = Qwen2Tokenizer.Load(tokenizerPath);
        var encoder = new SampleEncoder(tokenizer, TrainingDataTestSupport.Processor);
        var samples = TrainingJsonl.Read(Path.Combine(_dir, ShapesDataset.JsonlName));
        int imEnd = tokenizer.TokenToId("<|im_end|>")!.Value, imagePad = tokenizer.TokenToId("<|image_pad|>")!.Value;

        var encoded = samples.Select(encoder.Encode).ToList();

        for (int i = 0; i < encoded.Count; i++)
        {
            var s = encoded[i];
            var supervised = s.Labels.Where(l => l != EncodedSample.IgnoreIndex).Select(l => (int)l).ToArray();
            Assert.Equal([.. tokenizer.Encode(items[i].Answer), imEnd], supervised);
            Assert.Single(tokenizer.Encode(items[i].Answer));
            var grid = s.Images!.Grids.Single();
            Assert.Equal(grid.Tokens(2), s.Ids.Count(id => id == imagePad));
            Assert.InRange(grid.Tokens(2), 4, 16);
            Assert.True(s.Length < 64, $"sample {i} has {s.Length} tokens");
        }

        var batch = Batching.Collate(encoded, PadSide.Right, tokenizer.TokenToId("<|endoftext|>")!.Value);
        Assert.Equal(16, batch.Images!.Grids.Count);
        var packed = Packing.ToInputs(Packing.Pack(encoded, 256), tokenizer.TokenToId("<|endoftext|>")!.Value);
        var pos = PackedRopeIndex.Compute(packed, new(tokenizer.TokenToId("<|vision_start|>")!.Value, imagePad,
            tokenizer.TokenToId("<|video_pad|>")!.Value));
        Assert.Equal(3 * packed.Batch * packed.Seq, pos.Length);
        // A segment starts with <|im_start|>, never supervised anyway, so packing drops no answer label.
        Assert.Equal(encoded.Sum(s => s.Labels.Count(l => l != EncodedSample.IgnoreIndex)),
            packed.Labels!.Count(l => l != EncodedSample.IgnoreIndex));
    }
}
