using Qwen2VL.Model.Training.Data;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Data;

public sealed class TrainingJsonlTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qwen2vl-jsonl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(params string[] lines)
    {
        var path = Path.Combine(_dir, "train.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void Read_ParsesImagesVideosAndMessages_PathsRelativeToTheFile()
    {
        var path = Write(
            """{"images": ["img/a.png", "b.png"], "videos": [["f0.png", "f1.png"], "clip.gif"], "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>and<image> then <video><video>?"}, {"role": "assistant", "content": "yes"}]}""",
            "",
            """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}, {"role": "assistant", "content": "bye"}]}""");

        var samples = TrainingJsonl.Read(path);

        Assert.Equal(2, samples.Count);
        var s = samples[0];
        Assert.Equal([Path.Combine(_dir, "img", "a.png"), Path.Combine(_dir, "b.png")], s.Images);
        Assert.True(s.Videos[0].IsFrameList);
        Assert.Equal([Path.Combine(_dir, "f0.png"), Path.Combine(_dir, "f1.png")], s.Videos[0].Paths);
        Assert.False(s.Videos[1].IsFrameList);
        Assert.Equal([Path.Combine(_dir, "clip.gif")], s.Videos[1].Paths);
        Assert.Equal(["system", "user", "assistant"], s.Messages.Select(m => m.Role));
        Assert.Equal("<image>and<image> then <video><video>?", s.Messages[1].Content);
        Assert.Equal($"{path}:1", s.Source);
        Assert.Equal($"{path}:3", samples[1].Source);
        Assert.Empty(samples[1].Images);
        Assert.Equal(4, samples[1].Messages.Count);
    }

    [Theory]
    [InlineData("""{"messages": [{"role": "user", "content": "hi"}, """, "not valid JSON")]
    [InlineData("""[1, 2]""", "expected a JSON object")]
    [InlineData("""{"images": ["a.png"], "messages": [{"role": "user", "content": "no slot"}, {"role": "assistant", "content": "x"}]}""", "0 <image> placeholders but \"images\" lists 1")]
    [InlineData("""{"messages": [{"role": "user", "content": "<image><image>"}, {"role": "assistant", "content": "x"}], "images": ["a.png"]}""", "2 <image> placeholders but \"images\" lists 1")]
    [InlineData("""{"videos": ["v.gif"], "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]}""", "0 <video> placeholders but \"videos\" lists 1")]
    [InlineData("""{"messages": [{"role": "bot", "content": "x"}]}""", "role \"bot\"")]
    [InlineData("""{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}""", "messages[0] has no string \"content\"")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}]}""", "no assistant message")]
    [InlineData("""{"images": "a.png", "messages": []}""", "\"images\" must be an array")]
    [InlineData("""{"videos": [[]], "messages": []}""", "videos[0] has no frames")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "x"}, {"role": "assistant", "content": "x"}]}""", "only the first message")]
    [InlineData("""{"images": []}""", "\"messages\" is missing")]
    public void Read_BadLine_OneLineErrorNamingFileAndLine(string badLine, string expected)
    {
        var good = """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}""";
        var path = Write(good, "", badLine, good);

        var e = Assert.Throws<TrainingDataException>(() => TrainingJsonl.Read(path));

        Assert.IsAssignableFrom<ModelException>(e);
        Assert.StartsWith($"{path}:3: ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Read_MissingOrEmptyFile_NamesIt()
    {
        var missing = Path.Combine(_dir, "nope.jsonl");
        Assert.Contains(missing, Assert.Throws<TrainingDataException>(() => TrainingJsonl.Read(missing)).Message);
        var empty = Write("", "  ");
        Assert.Equal($"'{empty}' holds no samples", Assert.Throws<TrainingDataException>(() => TrainingJsonl.Read(empty)).Message);
    }
}
