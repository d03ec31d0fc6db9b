using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using ChatClient = OpenAI.Chat.ChatClient;
using Qwen2VL.Model.Serving;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime;
using Qwen2VL.Server;
using Xunit;

namespace Qwen2VL.Tests.Serving;

/// <summary>
/// <c>serve</c> with one slot and one queue place, so a request that holds the slot shows what happens to the others:
/// a client that disconnects frees it, a full queue is 429, and stopping the server lets the request in flight finish.
/// Each test starts its own server.
/// </summary>
public sealed class ServeSlotTests
{
    /// <summary>
    /// A request the model would answer for many minutes: end ids ignored (vLLM's ignore_eos), 99,000 tokens (each step
    /// attends to all cached positions, so the steps slow down as it grows).
    /// </summary>
    private const string Endless = "{\"messages\": [{\"role\": \"user\", \"content\": \"What colour is the shape?\"}], \"ignore_eos\": true, \"max_tokens\": 99000, \"stream\": true}";

    private static async Task<(ChatEngine, OpenAiServer)> Start()
    {
        var engine = ChatEngine.Load(ShapesServer.ModelDir, DeviceKind.Cpu, new BatcherOptions(Slots: 1, Capacity: 100_000, MaxQueue: 1));
        return (engine, await OpenAiServer.StartAsync(engine, new ServerOptions { Port = 0 }));
    }

    private static ChatClient Client(OpenAiServer server, ChatEngine engine) =>
        new(engine.ModelName, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.BaseUrl + "/v1") });

    /// <summary>Starts the endless request and returns once its first tokens arrived (it then holds the only slot).</summary>
    private static async Task<(HttpClient, HttpResponseMessage, Stream)> HoldTheSlot(OpenAiServer server)
    {
        var http = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Endless, Encoding.UTF8, "application/json") };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[256];
        int read = 0;
        while (read < 200) read += await body.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, 200 - read)));
        return (http, response, body);
    }

    [Fact]
    public async Task AKilledClientDoesNotStallTheOthers()
    {
        var (engine, server) = await Start();
        try
        {
            var (http, response, body) = await HoldTheSlot(server);
            // Two clients wait for the only slot (one queued, one admitted when the slot frees) …
            var client = Client(server, engine);
            var sample = File.ReadAllBytes(Path.Combine(ShapesServer.ModelDir, "sample.png"));
            var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
            var waiting = Task.Run(() => client.CompleteChatAsync([ShapesServer.Question(sample, ShapeQuestions.ColourQuestion)], options));
            // … then the first client dies without reading further.
            body.Dispose();
            response.Dispose();
            http.Dispose();
            var answer = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("purple", answer.Value.Content[0].Text);
            // The dead client's sequence was stopped, not run to its 99,000 tokens.
            Assert.True(engine.Batcher.Steps < 50_000, $"{engine.Batcher.Steps} decode steps: the killed client's sequence kept running");
            Assert.Equal(0, engine.Batcher.Active);
        }
        finally
        {
            await server.DisposeAsync();
            engine.Dispose();
        }
    }

    [Fact]
    public async Task AFullQueueGets429AndStoppingLetsTheRequestInFlightFinish()
    {
        var (engine, server) = await Start();
        try
        {
            var (http, response, body) = await HoldTheSlot(server);
            using var other = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
            var short1 = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 2}";
            var queued = other.PostAsync("/v1/chat/completions", new StringContent(short1, Encoding.UTF8, "application/json"));
            while (engine.Batcher.Queued == 0) await Task.Delay(10);
            var refused = await other.PostAsync("/v1/chat/completions", new StringContent(short1, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            using (var doc = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
                Assert.Contains("queue is full", doc.RootElement.GetProperty("error").GetProperty("message").GetString());

            // The client holding the slot goes away: the queued request gets the slot and its answer.
            body.Dispose();
            response.Dispose();
            http.Dispose();
            Assert.Equal(HttpStatusCode.OK, (await queued.WaitAsync(TimeSpan.FromSeconds(30))).StatusCode);

            // Stopping the server while a request runs lets it finish: all its tokens, then the server is down.
            var running = other.PostAsync("/v1/chat/completions", new StringContent(
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"ignore_eos\": true, \"max_tokens\": 6000}", Encoding.UTF8, "application/json"));
            while (engine.Batcher.Active == 0 && !running.IsCompleted) await Task.Delay(5);
            var stopping = server.StopAsync();
            var finished = await running.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(HttpStatusCode.OK, finished.StatusCode);
            using (var doc = JsonDocument.Parse(await finished.Content.ReadAsStringAsync()))
                Assert.Equal(6000, doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            await stopping.WaitAsync(TimeSpan.FromSeconds(30));
            await Assert.ThrowsAsync<HttpRequestException>(() => new HttpClient().GetAsync(server.BaseUrl + "/health"));
        }
        finally
        {
            await server.DisposeAsync();
            engine.Dispose();
        }
    }
}
