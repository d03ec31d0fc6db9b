using System.Text;
using System.Text.Json;
using Qwen2VL.Model.Training.Data;

namespace Qwen2VL.Model.Training.Synthetic;

/// <summary>One generated question: the image file (relative to the output folder), question, answer and what it asks.</summary>
public sealed record ShapesItem(string ImagePath, string Question, string Answer, ShapeQuestionType Type, ShapeScene Scene);

/// <summary>
/// A synthetic visual question answering set for training a small Qwen2-VL from scratch: small images (56–112 px
/// per side, any aspect ratio in between) of coloured circles, squares and triangles on white, one question per
/// image about colour, kind, count or position, answered with one word from a closed set of 17. The task is meant
/// to be learnable to ≥ 90 % accuracy by a tiny model in minutes on a CPU: saturated colours far apart, large
/// shapes when only colour or kind is asked, few regions, and images of 4–16 merged vision tokens.
/// </summary>
public static class ShapesDataset
{
    public const string JsonlName = "data.jsonl";
    public const string ImageFolder = "images";

    /// <summary>
    /// Writes <paramref name="count"/> PNGs under <c>outDir/images/</c> and <c>outDir/data.jsonl</c> (the
    /// <see cref="TrainingJsonl"/> layout, plus a "type" key) and returns the items. Question types cycle colour,
    /// kind, count, position so each is a quarter of the set; everything else is drawn from a generator seeded by
    /// <paramref name="seed"/>, so the same seed writes the same bytes.
    /// </summary>
    public static IReadOnlyList<ShapesItem> Generate(int count, int seed, string outDir)
    {
        if (count < 1) throw new TrainingDataException($"the shapes data set needs at least one item, got {count}");
        Directory.CreateDirectory(Path.Combine(outDir, ImageFolder));
        var rng = new SplitMix64(unchecked((ulong)seed));
        var items = new List<ShapesItem>(count);
        var jsonl = new StringBuilder();
        for (int i = 0; i < count; i++)
        {
            var type = (ShapeQuestionType)(i % 4);
            var scene = ShapeSceneSampler.Sample(type, rng);
            var (question, answer) = ShapeQuestions.Ask(type, scene, rng);
            string image = $"{ImageFolder}/{i:D6}.png";
            ShapeRenderer.SavePng(ShapeRenderer.Render(scene), Path.Combine(outDir, image));
            items.Add(new ShapesItem(image, question, answer, type, scene));
            jsonl.Append(JsonLine(image, question, answer, type)).Append('\n');
        }
        var path = Path.Combine(outDir, JsonlName);
        File.WriteAllText(path + ".tmp", jsonl.ToString(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        File.Move(path + ".tmp", path, overwrite: true);
        return items;
    }

    /// <summary>1 when the generated answer is the expected word (case and surrounding whitespace ignored), else 0.</summary>
    public static bool Score(string answer, string expected) =>
        string.Equals(answer.Trim().ToLowerInvariant(), expected.Trim().ToLowerInvariant(), StringComparison.Ordinal);

    static string JsonLine(string image, string question, string answer, ShapeQuestionType type)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartArray("images");
            w.WriteStringValue(image);
            w.WriteEndArray();
            w.WriteStartArray("messages");
            foreach (var (role, content) in new[] { ("user", TrainingSample.ImagePlaceholder + question), ("assistant", answer) })
            {
                w.WriteStartObject();
                w.WriteString("role", role);
                w.WriteString("content", content);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("type", type.ToString().ToLowerInvariant());
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
