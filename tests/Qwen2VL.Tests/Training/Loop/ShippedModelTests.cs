using Qwen2VL.Model.Training;
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

    [Fact]
    public void AnswersAtLeastNinetyPercentOfTwoHundredHeldOutQuestions()
    {
        var model = Path.Combine(AppContext.BaseDirectory, "shapes-model");
        var (accuracy, wrong) = ShapesRecipe.Evaluate(model, count: 200, seed: 20261124, _dir);
        foreach (var group in wrong.GroupBy(w => w.Item.Type))
            log.WriteLine($"wrong {group.Key}: {group.Count()}");
        log.WriteLine($"held-out accuracy {accuracy:P1}");
        Assert.True(accuracy >= 0.9, $"held-out accuracy {accuracy:P1} < 90%; e.g. " +
            string.Join("; ", wrong.Take(5).Select(w => $"{w.Item.Question} -> '{w.Answer}' (expected '{w.Item.Answer}')")));
    }
}
