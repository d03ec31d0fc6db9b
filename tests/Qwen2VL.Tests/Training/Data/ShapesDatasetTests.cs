using System.Text.Json;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Model.Training.Synthetic;
using Xunit;

namespace Qwen2VL.Tests.Training.Data;

public sealed class ShapesDatasetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-shapes-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Sub(string name) => Path.Combine(_dir, name);

    private static Dictionary<string, byte[]> Files(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), File.ReadAllBytes);

    [Fact]
    public void Generate_SameSeedSameBytes_DifferentSeedDifferentBytes()
    {
        ShapesDataset.Generate(24, 5, Sub("a"));
        ShapesDataset.Generate(24, 5, Sub("b"));
        ShapesDataset.Generate(24, 6, Sub("c"));

        var a = Files(Sub("a"));
        var b = Files(Sub("b"));
        var c = Files(Sub("c"));
        Assert.Equal(25, a.Count);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, bytes) in a) Assert.Equal(bytes, b[name]);
        Assert.NotEqual(a[ShapesDataset.JsonlName], c[ShapesDataset.JsonlName]);
        Assert.True(a.Count(kv => kv.Key != ShapesDataset.JsonlName && !kv.Value.SequenceEqual(c[kv.Key])) > 20);
    }

    [Fact]
    public void Generate_WritesAJsonlTheTrainingReaderAccepts_WithBalancedTypesAndValidAnswers()
    {
        var items = ShapesDataset.Generate(40, 1, _dir);
        var samples = TrainingJsonl.Read(Path.Combine(_dir, ShapesDataset.JsonlName));

        Assert.Equal(40, samples.Count);
        for (int i = 0; i < items.Count; i++)
        {
            Assert.Equal(Path.Combine(_dir, items[i].ImagePath), samples[i].Images[0]);
            Assert.Equal("<image>" + items[i].Question, samples[i].Messages[0].Content);
            Assert.Equal(items[i].Answer, samples[i].Messages[1].Content);
            Assert.Contains(items[i].Answer, ShapeWords.AllAnswers);
            Assert.Contains(items[i].Question, ShapeQuestions.AllQuestions);
            var image = RgbImage.Load(samples[i].Images[0]);
            Assert.InRange(image.Width, ShapeSceneSampler.MinSide, ShapeSceneSampler.MaxSide);
            Assert.InRange(image.Height, ShapeSceneSampler.MinSide, ShapeSceneSampler.MaxSide);
            Assert.Equal((items[i].Scene.Width, items[i].Scene.Height), (image.Width, image.Height));
        }
        Assert.All(Enum.GetValues<ShapeQuestionType>(), t => Assert.Equal(10, items.Count(x => x.Type == t)));
        Assert.Contains(items, x => x.Scene.Width != x.Scene.Height);
        var first = JsonDocument.Parse(File.ReadLines(Path.Combine(_dir, ShapesDataset.JsonlName)).First()).RootElement;
        Assert.Equal("colour", first.GetProperty("type").GetString());
    }

    [Fact]
    public void Generate_AnswersAgreeWithTheDrawnPixels()
    {
        var items = ShapesDataset.Generate(40, 3, _dir);

        foreach (var item in items)
        {
            var image = RgbImage.Load(Path.Combine(_dir, item.ImagePath));
            var scene = item.Scene;
            // Every shape's centre pixel has its colour; the corners are background.
            foreach (var shape in scene.Shapes)
            {
                int x = (int)shape.CenterX, y = (int)(shape.CenterY + (shape.Kind == ShapeKind.Triangle ? shape.Radius / 2 : 0));
                Assert.Equal(ShapeWords.Rgb(shape.Colour), (image[x, y, 0], image[x, y, 1], image[x, y, 2]));
            }
            foreach (var (x, y) in new[] { (0, 0), (image.Width - 1, 0), (0, image.Height - 1), (image.Width - 1, image.Height - 1) })
                Assert.Equal(ShapeWords.Background, (image[x, y, 0], image[x, y, 1], image[x, y, 2]));
            switch (item.Type)
            {
                case ShapeQuestionType.Colour:
                    Assert.Equal(ShapeWords.Name(scene.Shapes.Single().Colour), item.Answer);
                    break;
                case ShapeQuestionType.Kind:
                    Assert.Equal(ShapeWords.Name(scene.Shapes.Single().Kind), item.Answer);
                    break;
                case ShapeQuestionType.Count:
                    Assert.Equal(ShapeWords.Count(scene.Shapes.Count), item.Answer);
                    break;
                default:
                    var target = scene.Shapes.Single(s => item.Question == ShapeQuestions.PositionQuestion(s.Colour, s.Kind));
                    Assert.Equal(ShapeWords.Name(target.Region), item.Answer);
                    var (fx, fy) = ShapeSceneSampler.RegionCentre(target.Region);
                    Assert.InRange(target.CenterX / scene.Width, fx - 0.021, fx + 0.021);
                    Assert.InRange(target.CenterY / scene.Height, fy - 0.021, fy + 0.021);
                    break;
            }
        }
    }

    [Fact]
    public void Render_KnownScene_PixelsOfARedSquareOnTheLeft()
    {
        var scene = new ShapeScene(80, 60, [new Shape(ShapeKind.Square, ShapeColour.Red, ShapeRegion.Left, 16, 30, 10)]);

        var image = ShapeRenderer.Render(scene);

        // Half side 8.5: pixel centres 7.5..24.5 horizontally and 21.5..38.5 vertically are inside.
        (byte, byte, byte) At(int x, int y) => (image[x, y, 0], image[x, y, 1], image[x, y, 2]);
        Assert.Equal((220, 30, 30), At(16, 30));
        Assert.Equal((220, 30, 30), At(7, 21));
        Assert.Equal((220, 30, 30), At(24, 38));
        Assert.Equal((255, 255, 255), At(6, 30));
        Assert.Equal((255, 255, 255), At(25, 30));
        Assert.Equal((255, 255, 255), At(16, 20));
        Assert.Equal((255, 255, 255), At(60, 30));
        Assert.Equal(18 * 18, Enumerable.Range(0, 80 * 60).Count(i => image.Rgb[3 * i + 1] == 30));
    }

    [Fact]
    public void Render_TriangleAndCircle_FollowTheirOutlines()
    {
        var tri = ShapeRenderer.Render(new ShapeScene(40, 40, [new Shape(ShapeKind.Triangle, ShapeColour.Blue, ShapeRegion.Center, 20, 20, 10)]));
        var circle = ShapeRenderer.Render(new ShapeScene(40, 40, [new Shape(ShapeKind.Circle, ShapeColour.Green, ShapeRegion.Center, 20, 20, 10)]));

        Assert.Equal(30, tri[19, 11, 0]);       // just under the apex
        Assert.Equal(255, tri[12, 12, 0]);      // beside the apex: outside
        Assert.Equal(30, tri[11, 29, 0]);       // base corner region
        Assert.Equal(30, circle[12, 20, 0]);    // left edge of the disc (centre 12.5, distance 7.5)
        Assert.Equal(255, circle[12, 12, 0]);   // the bounding box corner is outside the disc
        // A disc of radius 10 covers about π·100 pixels.
        Assert.InRange(Enumerable.Range(0, 1600).Count(i => circle.Rgb[3 * i] == 30), 300, 328);
    }

    [Theory]
    [InlineData(" Red\n", "red", true)]
    [InlineData("RED", "red", true)]
    [InlineData("red.", "red", false)]
    [InlineData("blue", "red", false)]
    [InlineData("", "red", false)]
    public void Score_ExactWordAfterTrimAndLowerCase(string answer, string expected, bool correct) =>
        Assert.Equal(correct, ShapesDataset.Score(answer, expected));

    [Fact]
    public void Tokenizer_RoundTripsEveryQuestionAndAnswer_WithTheFixtureSpecialIds()
    {
        var path = Sub("tokenizer.json");
        ShapesTokenizer.Build(path);
        var tokenizer = Qwen2Tokenizer.Load(path);

        Assert.Equal(376, tokenizer.VocabSize);
        string[] specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>", "<|vision_pad|>"];
        for (int i = 0; i < specials.Length; i++) Assert.Equal(368 + i, tokenizer.TokenToId(specials[i]));
        foreach (var text in ShapeQuestions.AllQuestions.Concat(ShapeWords.AllAnswers).Concat(ShapesTokenizer.Corpus()))
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        // Each answer is a single token, so the model answers in one step plus <|im_end|>.
        Assert.All(ShapeWords.AllAnswers, a => Assert.Single(tokenizer.Encode(a)));
        // Deterministic: building again gives the same bytes.
        ShapesTokenizer.Build(Sub("again.json"));
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(Sub("again.json")));
    }
}
