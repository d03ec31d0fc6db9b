using Qwen2VL.Model.Training;
using Qwen2VL.Model.Training.Synthetic;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Training.Loop;

/// <summary>
/// The embedded default model (models/qwen2vl/default-model, trained here with <c>qwen2vl train-shapes</c>) answers
/// freshly generated held-out questions — a seed the training data never used — about colour, shape, count and
/// position.
/// </summary>
public sealed class ShippedModelTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-heldout-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (double Accuracy, Dictionary<ShapeQuestionType, double> ByType) Evaluate()
    {
        var model = Path.Combine(AppContext.BaseDirectory, "shapes-model");
        const int count = 200;
        var (accuracy, wrong) = ShapesRecipe.Evaluate(model, count, seed: 20261124, _dir);
        // Question types cycle colour, kind, count, position: 50 of each.
        var byType = Enum.GetValues<ShapeQuestionType>().ToDictionary(t => t, t => 1.0 - wrong.Count(w => w.Item.Type == t) / (count / 4.0));
        foreach (var (type, value) in byType)
            log.WriteLine($"{type}: {value:P0}");
        log.WriteLine($"held-out accuracy {accuracy:P1}");
        return (accuracy, byType);
    }

    [Fact]
    public void AnswersColourQuestionsAboutUnseenImages() =>
        Assert.True(Evaluate().ByType[ShapeQuestionType.Colour] >= 0.95);

    [Fact]
    public void AnswersAtLeastNinetyPercentOfTwoHundredHeldOutQuestions() =>
        Assert.True(Evaluate().Accuracy >= 0.9);
}
