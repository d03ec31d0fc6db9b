namespace Qwen2VL.Model.Training.Synthetic;

/// <summary>The question templates of the task and the answer a scene gives to each.</summary>
public static class ShapeQuestions
{
    public const string ColourQuestion = "What colour is the shape?";
    public const string KindQuestion = "What shape is this?";
    public const string CountQuestion = "How many shapes are there?";

    public static string PositionQuestion(ShapeColour colour, ShapeKind kind) =>
        $"Where is the {ShapeWords.Name(colour)} {ShapeWords.Name(kind)}?";

    /// <summary>The question and answer for a scene drawn by <see cref="ShapeSceneSampler"/> for this type.</summary>
    public static (string Question, string Answer) Ask(ShapeQuestionType type, ShapeScene scene, Data.SplitMix64 rng)
    {
        var first = scene.Shapes[0];
        switch (type)
        {
            case ShapeQuestionType.Colour:
                return (ColourQuestion, ShapeWords.Name(first.Colour));
            case ShapeQuestionType.Kind:
                return (KindQuestion, ShapeWords.Name(first.Kind));
            case ShapeQuestionType.Count:
                return (CountQuestion, ShapeWords.Count(scene.Shapes.Count));
            default:
                var target = scene.Shapes[rng.Next(scene.Shapes.Count)];
                return (PositionQuestion(target.Colour, target.Kind), ShapeWords.Name(target.Region));
        }
    }

    /// <summary>Every question the task can ask (3 fixed ones and one per colour and kind).</summary>
    public static IReadOnlyList<string> AllQuestions { get; } =
    [
        ColourQuestion,
        KindQuestion,
        CountQuestion,
        .. from c in Enum.GetValues<ShapeColour>() from k in Enum.GetValues<ShapeKind>() select PositionQuestion(c, k),
    ];
}
