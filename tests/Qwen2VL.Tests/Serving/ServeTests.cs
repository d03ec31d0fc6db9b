using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Serving;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime;
using Qwen2VL.Server;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Serving;

/// <summary>One <c>serve</c> instance on 127.0.0.1 (any free port) with the embedded shapes model, shared by a test class.</summary>
public sealed class ShapesServer : IAsyncLifetime
{
    public const string ApiKey = "test-key";
    public static string ModelDir => Path.Combine(AppContext.BaseDirectory, "shapes-model");

    public ChatEngine Engine { get; private set; } = null!;
    public OpenAiServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Engine = ChatEngine.Load(ModelDir, DeviceKind.Cpu, new BatcherOptions(Slots: 32, Capacity: 256, MaxQueue: 64));
        Server = await OpenAiServer.StartAsync(Engine, new ServerOptions
        {
            Port = 0, ApiKey = ApiKey, MaxRequestBytes = 256 * 1024, MaxImagePixels = 300 * 300,
        });
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Engine.Dispose();
    }

    public OpenAI.Chat.ChatClient Client() =>
        new(Engine.ModelName, new ApiKeyCredential(ApiKey), new OpenAIClientOptions { Endpoint = new Uri(Server.BaseUrl + "/v1") });

    public static UserChatMessage Question(byte[] png, string question) =>
        new(ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(png), "image/png"), ChatMessageContentPart.CreateTextPart(question));

    public static byte[] Png(ShapeScene scene)
    {
        var path = Path.Combine(Path.GetTempPath(), $"qvl-serve-{Guid.NewGuid():N}.png");
        try
        {
            ShapeRenderer.SavePng(ShapeRenderer.Render(scene), path);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary>
/// <c>serve</c> driven over real HTTP by the official OpenAI .NET client (and raw HTTP for what the client will not
/// send): answers, streaming, concurrency through continuous batching, and refusals with their messages.
/// </summary>
public sealed class ServeTests(ShapesServer fixture, ITestOutputHelper log) : IClassFixture<ShapesServer>
{
    private static readonly ChatCompletionOptions Greedy = new() { Temperature = 0, MaxOutputTokenCount = 16 };

    private static byte[] SamplePng => File.ReadAllBytes(Path.Combine(ShapesServer.ModelDir, "sample.png"));

    [Fact]
    public async Task AnswersPurpleForTheSampleImageSentAsADataUrl()
    {
        ChatCompletion answer = await fixture.Client().CompleteChatAsync([ShapesServer.Question(SamplePng, ShapeQuestions.ColourQuestion)], Greedy);
        Assert.Equal("purple", answer.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, answer.FinishReason);
        Assert.True(answer.Usage.InputTokenCount > 16 && answer.Usage.OutputTokenCount >= 1);
    }

    [Fact]
    public async Task StreamsPurpleAsServerSentEvents()
    {
        var text = new StringBuilder();
        int updates = 0;
        ChatFinishReason? finish = null;
        await foreach (var update in fixture.Client().CompleteChatStreamingAsync([ShapesServer.Question(SamplePng, ShapeQuestions.ColourQuestion)], Greedy))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal("purple", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.True(updates >= 3, $"{updates} events: role, content, finish");
    }

    [Fact]
    public async Task StopStringsCutTheAnswer()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16, StopSequences = { "rp" } };
        ChatCompletion answer = await fixture.Client().CompleteChatAsync([ShapesServer.Question(SamplePng, ShapeQuestions.ColourQuestion)], options);
        Assert.Equal("pu", answer.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, answer.FinishReason);
    }

    [Fact]
    public async Task ThirtyTwoConcurrentClientsEachGetTheirOwnAnswer()
    {
        var colours = Enum.GetValues<ShapeColour>();
        var kinds = Enum.GetValues<ShapeKind>();
        var scenes = Enumerable.Range(0, 32).Select(i =>
        {
            int w = 56 + 8 * (i % 5), h = 56 + 8 * (i % 3);
            return new ShapeScene(w, h, [new Shape(kinds[i % 3], colours[i % colours.Length], ShapeRegion.Center, w / 2.0, h / 2.0, 14 + i % 4)]);
        }).ToList();
        long stepsBefore = fixture.Engine.Batcher.Steps;
        var client = fixture.Client();
        var answers = await Task.WhenAll(scenes.Select(async scene =>
        {
            ChatCompletion c = await client.CompleteChatAsync([ShapesServer.Question(ShapesServer.Png(scene), ShapeQuestions.ColourQuestion)], Greedy);
            return (c.Content[0].Text, c.Usage.OutputTokenCount);
        }));
        long steps = fixture.Engine.Batcher.Steps - stepsBefore;
        // Each answer is the one the single-sequence generator (generate's path) gives for that request alone; and
        // the answers differ with the images: nearly all name the shape's colour (the model is not perfect).
        var alone = AnswersAlone(scenes);
        for (int i = 0; i < scenes.Count; i++)
            Assert.Equal(alone[i], answers[i].Text);
        int right = scenes.Select((s, i) => ShapeWords.Name(s.Shapes[0].Colour) == answers[i].Text).Count(r => r);
        log.WriteLine($"{right}/32 name the shape's colour");
        Assert.True(right >= 30, $"only {right}/32 answers name the shape's colour");
        // Batched: far fewer decode steps than one per generated token of each request.
        int tokens = answers.Sum(a => a.OutputTokenCount);
        log.WriteLine($"32 requests, {tokens} completion tokens, {steps} decode steps");
        Assert.True(steps < tokens / 2, $"{steps} decode steps for {tokens} tokens: the requests were not batched");
    }

    /// <summary>The answers of <see cref="TextGenerator"/> (one sequence, its own KV cache) to the same prompts.</summary>
    private static List<string> AnswersAlone(IEnumerable<ShapeScene> scenes)
    {
        using var model = Qwen2VLModel.Load(ShapesServer.ModelDir, DeviceKind.Cpu);
        var tokenizer = Qwen2Tokenizer.Load(Path.Combine(ShapesServer.ModelDir, "tokenizer.json"));
        var processor = ImageProcessor.Load(Path.Combine(ShapesServer.ModelDir, "preprocessor_config.json"));
        var options = new GenerationOptions(16, SamplingOptions.Greedy, ChatInputs.StopIds(tokenizer, model.EosTokenIds), model.PadTokenId);
        return scenes.Select(scene =>
        {
            var inputs = ChatInputs.Build(tokenizer, processor, [ShapeRenderer.Render(scene)], [], ShapeQuestions.ColourQuestion);
            var output = TextGenerator.Generate(model, inputs, options);
            return tokenizer.Decode(output.NewTokens.Select(t => (int)t), skipSpecialTokens: true);
        }).ToList();
    }

    [Fact]
    public async Task ListsTheModelAndReportsHealth()
    {
        using var http = Http();
        using var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models"));
        Assert.Equal(fixture.Engine.ModelName, models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
        using var health = JsonDocument.Parse(await http.GetStringAsync("/health"));
        Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
        Assert.Equal(32, health.RootElement.GetProperty("slots").GetInt32());
    }

    [Theory]
    [InlineData("{\"messages\": [", 400, "not valid JSON")]
    [InlineData("[1, 2]", 400, "must be a JSON object")]
    [InlineData("{}", 400, "'messages' must be a non-empty array")]
    [InlineData("{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", 400, "role 'tool' is not supported")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"https://example.com/a.png\"}}]}]}", 400, "remote image URLs are not supported")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,@@@\"}}]}]}", 400, "base64 payload is invalid")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,aGVsbG8=\"}}]}]}", 400, "not an image format")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": 7}", 400, "temperature must be in [0, 2]")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 100000}", 400, "exceed the context")]
    [InlineData("{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 404, "model 'gpt-4o' does not exist")]
    public async Task MalformedRequestsGetA4xxWithTheReason(string body, int status, string message)
    {
        var (code, error) = await Post(body);
        Assert.Equal(status, code);
        Assert.Contains(message, error);
    }

    [Fact]
    public async Task OversizedRequestsGet413()
    {
        var big = "{\"messages\": [{\"role\": \"user\", \"content\": \"" + new string('a', 300 * 1024) + "\"}]}";
        var (code, error) = await Post(big);
        Assert.Equal(413, code);
        Assert.Contains("above the limit of 262144", error);

        var wide = new ShapeScene(400, 400, [new Shape(ShapeKind.Circle, ShapeColour.Red, ShapeRegion.Center, 200, 200, 50)]);
        var url = "data:image/png;base64," + Convert.ToBase64String(ShapesServer.Png(wide));
        (code, error) = await Post($"{{\"messages\": [{{\"role\": \"user\", \"content\": [{{\"type\": \"image_url\", \"image_url\": {{\"url\": \"{url}\"}}}}]}}]}}");
        Assert.Equal(413, code);
        Assert.Contains("400x400 = 160000 pixels, above the limit of 90000", error);
    }

    [Fact]
    public async Task EveryRequestNeedsTheApiKey()
    {
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Server.BaseUrl) };
        var response = await http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("API key", await response.Content.ReadAsStringAsync());
        http.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/v1/models")).StatusCode);
    }

    private HttpClient Http()
    {
        var http = new HttpClient { BaseAddress = new Uri(fixture.Server.BaseUrl) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", ShapesServer.ApiKey);
        return http;
    }

    private async Task<(int Status, string Message)> Post(string body)
    {
        using var http = Http();
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        log.WriteLine($"{(int)response.StatusCode}: {text}");
        using var doc = JsonDocument.Parse(text);
        return ((int)response.StatusCode, doc.RootElement.GetProperty("error").GetProperty("message").GetString()!);
    }
}
