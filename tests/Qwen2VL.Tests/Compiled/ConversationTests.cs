using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Compiled;

/// <summary>
/// <see cref="Conversation"/> (system prompt, turns, images where <c>&lt;image&gt;</c> is) and <see cref="ChatSession"/>
/// (KV cache kept across turns) on the embedded tiny model (random weights, so answers are long and varied).
/// </summary>
public sealed class ConversationTests
{
    private static string Model => Path.Combine(AppContext.BaseDirectory, "default-model");
    private static readonly Qwen2Tokenizer Tokenizer = Qwen2Tokenizer.Load(Path.Combine(Model, "tokenizer.json"));
    private static readonly ImageProcessor Processor = ImageProcessor.Load(Path.Combine(Model, "preprocessor_config.json"));
    private static RgbImage Image() => RgbImage.Load(Path.Combine(Model, "example", "image_0.png"));

    private const string Slot = ChatTemplate.VisionStart + ChatTemplate.ImagePad + ChatTemplate.VisionEnd;

    [Fact]
    public void ImagesGoWhereThePlaceholdersAreOrFirstWhenThereAreNone()
    {
        var c = new Conversation { System = "Be brief." };
        c.AddUser("Compare <image> with <image>.", [Image(), Image()]);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCompare " + Slot + " with " + Slot
            + ".<|im_end|>\n<|im_start|>assistant\n", c.Render());

        var plain = new Conversation();
        plain.AddUser("What is it?", [Image()]);
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + Slot
            + "What is it?<|im_end|>\n<|im_start|>assistant\n", plain.Render());

        var e = Assert.Throws<ModelException>(() => new Conversation().AddUser("<image> and <image>", [Image()]));
        Assert.Contains("2 <image> placeholders but 1 image was given", e.Message);
        Assert.Throws<ModelException>(() => new Conversation().Add(new ConversationTurn("system", [])));
    }

    [Fact]
    public void ASystemMessageAtTheStartIsTheSystemPromptAndALaterOneStaysWhereItIs()
    {
        // As an OpenAI message list carries them (serve, the chat client): rendered as the template renders the list.
        var c = new Conversation();
        c.AddSystem("Be brief.");
        c.AddUser("hi");
        c.AddAssistant("hello");
        c.AddSystem("Now answer in French.");
        c.AddUser("bye");
        Assert.Equal("Be brief.", c.System);
        var messages = new[]
        {
            ChatMessage.FromText("system", "Be brief."), ChatMessage.FromText("user", "hi"), ChatMessage.FromText("assistant", "hello"),
            ChatMessage.FromText("system", "Now answer in French."), ChatMessage.FromText("user", "bye"),
        };
        Assert.Equal(ChatTemplate.Render(messages, addGenerationPrompt: true), c.Render());
    }

    [Fact]
    public void ContinuationTextIsWhatFollowsTheCachedAnswer()
    {
        var c = new Conversation();
        c.AddUser("first <image>", [Image()]);
        string before = c.Render();
        c.AddAssistant("an answer");
        c.AddUser("second <image>", [Image()]);
        var continuation = c.ContinuationInputs(Tokenizer, Processor, 2);
        // The cache holds the first prompt and the answer's tokens; the continuation completes the whole rendering.
        string whole = VisionPlaceholders.Expand(c.Render(), Grids(2), [], 2);
        string cached = VisionPlaceholders.Expand(before, Grids(1), [], 2) + "an answer";
        Assert.Equal(whole, cached + Tokenizer.Decode(continuation.InputIds.Select(id => (int)id)));
        Assert.Single(continuation.Images!.Grids);
    }

    [Fact]
    public void ACachedSecondTurnGivesTheTokensOfTheWholeConversationRunAtOnce()
    {
        using var model = Qwen2VLModel.Load(Model, DeviceKind.Cpu);
        var stop = ChatInputs.StopIds(Tokenizer, model.EosTokenIds);
        var options = new GenerationOptions(5, SamplingOptions.Greedy with { RepetitionPenalty = 1.3 }, stop, model.PadTokenId);
        using var session = new ChatSession(model, Tokenizer, Processor, contextLength: 512);
        session.Conversation.System = "Answer in colours.";
        session.Conversation.AddUser("Look: <image>", [Image()]);
        var first = session.Answer(options);
        Assert.NotEmpty(first.Tokens);
        var afterFirst = session.CachedIds.ToArray();
        {
            var c1 = new Conversation { System = "Answer in colours." };
            c1.AddUser("Look: <image>", [Image()]);
            var r1 = TextGenerator.Generate(model, c1.ToInputs(Tokenizer, Processor), options);
            Assert.Equal(r1.NewTokens.TakeWhile(t => !stop.Contains(t)).ToArray(), first.Tokens);
        }

        session.Conversation.AddUser("And this one? <image>", [Image()]);
        var continuation = session.Conversation.ContinuationInputs(Tokenizer, Processor, 2);
        var streamed = new List<long>();
        var second = session.Answer(options, streamed.Add);
        Assert.Equal(second.Tokens, streamed);
        Assert.NotEmpty(second.Tokens);

        // The same ids, images and sampling as one prompt through the plain generator: identical tokens.
        var ids = afterFirst.Concat(continuation.InputIds).ToArray();
        var images = Processor.Process([Image(), Image()]);
        var whole = new ForwardInputs(ids, 1, ids.Length,
            Images: new VisionBatch(images.PixelValues, images.PatchCount, images.PatchDim, images.Grids.Select(g => new GridThw(g.T, g.H, g.W)).ToArray()));
        var reference = TextGenerator.Generate(model, whole, options);
        var expected = reference.NewTokens.TakeWhile(t => !stop.Contains(t)).ToArray();
        Assert.Equal(expected, second.Tokens);
        Assert.Equal(ids.Concat(second.Tokens), session.CachedIds);   // every answer token is cached, the closing id is not
        Assert.Equal(4, session.Conversation.Turns.Count);

        session.Reset();
        Assert.Empty(session.CachedIds);
        Assert.Empty(session.Conversation.Turns);
        Assert.Equal("Answer in colours.", session.Conversation.System);
    }

    private static IReadOnlyList<(int t, int h, int w)> Grids(int images) =>
        Enumerable.Repeat(Processor.Process([Image()]).Grids[0], images).Select(g => (g.T, g.H, g.W)).ToList();
}
