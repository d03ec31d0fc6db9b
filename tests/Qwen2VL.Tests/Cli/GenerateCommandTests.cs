using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary><c>qwen2vl generate</c> on the embedded tiny model: the streamed text and its errors.</summary>
public sealed class GenerateCommandTests
{
    private static string DefaultModel => Path.Combine(AppContext.BaseDirectory, "default-model");
    private static string Image => Path.Combine(DefaultModel, "example", "image_0.png");

    [Fact]
    public void StreamedTextIsTheDecodedGreedyAnswer()
    {
        const string prompt = "What is in the picture?";
        var r = CliRunner.Run("generate", "--model", DefaultModel, "--image", Image, "--prompt", prompt, "--max-new-tokens", "6");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        // The same answer computed in-process from the library pieces the command is made of.
        var tokenizer = Qwen2Tokenizer.Load(Path.Combine(DefaultModel, "tokenizer.json"));
        var processor = ImageProcessor.Load(Path.Combine(DefaultModel, "preprocessor_config.json"));
        var inputs = ChatInputs.Build(tokenizer, processor, [RgbImage.Load(Image)], [], prompt);
        using var model = Qwen2VLModel.Load(DefaultModel, DeviceKind.Cpu);
        var result = TextGenerator.Generate(model, inputs,
            new GenerationOptions(6, SamplingOptions.Greedy, ChatInputs.StopIds(tokenizer, model.EosTokenIds), model.PadTokenId));
        string expected = tokenizer.Decode(result.NewTokens.Select(t => (int)t), skipSpecialTokens: true);
        Assert.Equal(expected + Environment.NewLine, r.Stdout);
    }

    [Fact]
    public void WithoutArgumentsTheEmbeddedShapesModelAnswersAboutItsSampleImage()
    {
        // The README's main command.
        var r = CliRunner.Run("generate", "--max-new-tokens", "4");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("What colour is the shape?", r.Stderr);
        // The embedded shapes model names the colour of its sample image's shape.
        Assert.Equal("purple", r.Stdout.Trim());
    }

    [Fact]
    public void AnImageWithoutAPromptIsAnError()
    {
        var r = CliRunner.Run("generate", "--image", Image);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--prompt is required", r.Stderr);
    }

    [Fact]
    public void MissingImageIsOneLineAndExitCodeTwo()
    {
        var r = CliRunner.Run("generate", "--image", "/no/such/picture.png", "--prompt", "hi");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("picture.png", r.Stderr);
    }

    [Fact]
    public void BadSamplingOptionIsNamed()
    {
        var r = CliRunner.Run("generate", "--image", Image, "--prompt", "hi", "--top-p", "1.5");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("top-p", r.Stderr);
    }

    [Fact]
    public void PromptHelpNamesTheQuestionTheDefaultModelAnswers()
    {
        // The help once named "Describe this image.", which the shapes model answers with an empty line.
        var help = CliRunner.Run("generate", "--help");
        Assert.Contains("\"What colour is the shape?\"", help.Stdout);
        Assert.DoesNotContain("Describe this image", help.Stdout);
        Assert.Contains("cuda when a GPU is visible, else cpu", help.Stdout);
    }

    [Fact]
    public void AnEmptyAnswerIsExplainedAndSpeedIsOnStderr()
    {
        var none = CliRunner.Run("generate", "--max-new-tokens", "0");
        Assert.Equal(0, none.ExitCode);
        Assert.Equal(Environment.NewLine, none.Stdout);
        Assert.Contains("empty answer: --max-new-tokens is 0", none.Stderr);

        var answer = CliRunner.Run("generate", "--max-new-tokens", "3");
        Assert.Equal("purple", answer.Stdout.Trim());
        Assert.Matches(@"\(\d+ tokens, [0-9.]+ tokens/s; prompt \d+ tokens at [0-9.]+ tokens/s; ", answer.Stderr);
    }

    [Fact]
    public void InfoNamesTheDefaultDevice()
    {
        var r = CliRunner.Run("info");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains($"default --device: {ComputeContext.DefaultKind().Name()}", r.Stdout);
        Assert.Contains("ilgpu-cpu", r.Stdout);
    }
}
