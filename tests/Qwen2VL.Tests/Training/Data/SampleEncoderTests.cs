using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Data;
using Xunit;
using static Qwen2VL.Tests.Training.Data.TrainingDataTestSupport;

namespace Qwen2VL.Tests.Training.Data;

public sealed class SampleEncoderTests
{
    private static readonly TrainingMessage[] TwoTurns =
    [
        new("user", "<image>What is in the picture?"),
        new("assistant", "A cat on a mat."),
        new("user", "And its colour?"),
        new("assistant", "Black and white."),
    ];

    /// <summary>The runs of consecutive supervised labels, decoded.</summary>
    private static List<string> SupervisedRuns(EncodedSample s)
    {
        var runs = new List<string>();
        var run = new List<int>();
        for (int i = 0; i <= s.Length; i++)
        {
            if (i < s.Length && s.Labels[i] != EncodedSample.IgnoreIndex)
            {
                Assert.Equal(s.Ids[i], s.Labels[i]);
                run.Add((int)s.Labels[i]);
            }
            else if (run.Count > 0)
            {
                runs.Add(Tokenizer.Decode(run));
                run.Clear();
            }
        }
        return runs;
    }

    [Fact]
    public void Encode_TwoTurns_OnlyAssistantContentAndImEndAreSupervised()
    {
        var image = Image(84, 56, seed: 1);

        var s = Encoder().Encode(TwoTurns, [image], []);

        Assert.Equal(["A cat on a mat.<|im_end|>", "Black and white.<|im_end|>"], SupervisedRuns(s));
        // The ids are those of the whole rendered, expanded text: splitting at label boundaries changes no token.
        var chat = TwoTurns.Select(SampleEncoder.ToChatMessage).ToList();
        var grids = s.Images!.Grids.Select(g => (g.T, g.H, g.W)).ToList();
        var whole = Tokenizer.Encode(VisionPlaceholders.Expand(ChatTemplate.Render(chat), grids, []));
        Assert.Equal(whole.Select(i => (long)i), s.Ids);
        // Pads: one per merged patch of the 84x56 image (grid 1x4x6 -> 6 pads), all unsupervised.
        Assert.Equal([(1, 4, 6)], grids);
        Assert.Equal(6, s.Ids.Count(i => i == ImagePad));
        for (int i = 0; i < s.Length; i++)
            if (s.Ids[i] is ImagePad or VisionStart or VisionEnd) Assert.Equal(EncodedSample.IgnoreIndex, s.Labels[i]);
        // The assistant header and the newline after each <|im_end|> are not supervised.
        int firstAnswer = Array.FindIndex(s.Labels, l => l != EncodedSample.IgnoreIndex);
        Assert.EndsWith("<|im_start|>assistant\n", Tokenizer.Decode(s.Ids[..firstAnswer].Select(i => (int)i)));
        int imEnd = Array.IndexOf(s.Labels, ImEnd);
        Assert.Equal("\n", Tokenizer.Decode([(int)s.Ids[imEnd + 1]]));
        Assert.Equal(EncodedSample.IgnoreIndex, s.Labels[imEnd + 1]);
        // Pixels are the processor's own output for the image.
        Assert.Equal(Processor.Process([image]).PixelValues, s.Images.PixelValues);
        Assert.Null(s.Videos);
    }

    [Fact]
    public void Encode_SuperviseNewlineOption_AlsoSupervisesTheNewlineAfterImEnd()
    {
        var s = Encoder(new SampleEncoderOptions { SuperviseNewlineAfterImEnd = true }).Encode(TwoTurns, [Image(56, 56, 2)], []);

        Assert.Equal(["A cat on a mat.<|im_end|>\n", "Black and white.<|im_end|>\n"], SupervisedRuns(s));
    }

    [Fact]
    public void Encode_NoSystemTurn_GetsTheDefaultSystemPromptUnsupervised()
    {
        var s = TextOnly("hi", "hello");

        var text = Tokenizer.Decode(s.Ids.Select(i => (int)i));
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n", text);
        Assert.Equal(["hello<|im_end|>"], SupervisedRuns(s));
    }

    [Fact]
    public void Encode_VideoAndImagePlaceholdersInOrder_VideoPadsUnsupervised()
    {
        var video = new[] { Image(56, 56, 3), Image(56, 56, 4) };
        var s = Encoder().Encode(
            [new("user", "<video>then<image>"), new("assistant", "ok")], [Image(56, 84, 5)], [video]);

        Assert.Equal(4, s.Ids.Count(i => i == VideoPad));    // grid 1x4x4
        Assert.Equal(6, s.Ids.Count(i => i == ImagePad));    // grid 1x6x4
        Assert.True(Array.IndexOf(s.Ids, VideoPad) < Array.IndexOf(s.Ids, ImagePad));
        Assert.Equal(["ok<|im_end|>"], SupervisedRuns(s));
    }

    [Fact]
    public void Encode_MinMaxPixelsOption_ChangesTheGrid()
    {
        var image = Image(112, 112, 6);
        Assert.Equal(new Model.Reference.GridThw(1, 6, 6), Encoder().Encode(TwoTurns, [image], []).Images!.Grids[0]);   // fixture max 9408

        var small = Encoder(new SampleEncoderOptions { MaxPixels = 56 * 56 }).Encode(TwoTurns, [image], []);

        Assert.Equal(new Model.Reference.GridThw(1, 4, 4), small.Images!.Grids[0]);
    }

    private static void WriteGif(string path)
    {
        using var gif = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(56, 56);
        for (int f = 1; f < 4; f++)
            gif.Frames.AddFrame(new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(56, 56,
                new SixLabors.ImageSharp.PixelFormats.Rgb24((byte)(60 * f), 0, 0)).Frames.RootFrame);
        SixLabors.ImageSharp.ImageExtensions.SaveAsGif(gif, path);
    }

    [Fact]
    public void Encode_FromJsonl_LoadsFilesAndNamesTheLineOnAMissingImage()
    {
        var dir = Directory.CreateTempSubdirectory("qwen2vl-enc-").FullName;
        try
        {
            using (var img = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(56, 56))
                SixLabors.ImageSharp.ImageExtensions.SaveAsPng(img, Path.Combine(dir, "a.png"));
            WriteGif(Path.Combine(dir, "clip.gif"));
            File.Copy(Path.Combine(dir, "a.png"), Path.Combine(dir, "f0.png"));
            var path = Path.Combine(dir, "d.jsonl");
            File.WriteAllLines(path,
            [
                """{"images": ["a.png"], "videos": [["f0.png"], "clip.gif"], "messages": [{"role": "user", "content": "<video><image>x<video>"}, {"role": "assistant", "content": "y"}]}""",
                """{"images": ["missing.png"], "messages": [{"role": "user", "content": "<image>x"}, {"role": "assistant", "content": "y"}]}""",
            ]);
            var samples = TrainingJsonl.Read(path);

            var ok = Encoder().Encode(samples[0]);
            Assert.Equal(4, ok.Ids.Count(i => i == ImagePad));
            // The one-frame video is padded to two frames (grid 1x4x4); the GIF's frames are sampled to two 56x56 ones.
            Assert.Equal(2, ok.Videos!.Grids.Count);
            Assert.Equal(new Model.Reference.GridThw(1, 4, 4), ok.Videos.Grids[0]);
            Assert.Equal(ok.Videos.Grids.Sum(g => g.Tokens(2)), ok.Ids.Count(i => i == VideoPad));
            Assert.Equal($"{path}:1", ok.Source);
            var e = Assert.Throws<TrainingDataException>(() => Encoder().Encode(samples[1]));
            Assert.StartsWith($"{path}:2: ", e.Message);
            Assert.Contains("missing.png", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
