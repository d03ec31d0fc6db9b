using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
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

    /// <summary>The OpenAI client without its default retries (it retries a 429 three times, backing off, by itself).</summary>
    private static OpenAI.Chat.ChatClient Client(OpenAiServer server, ChatEngine engine) =>
        new(engine.ModelName, new ApiKeyCredential("unused"), new OpenAIClientOptions
        {
            Endpoint = new Uri(server.BaseUrl + "/v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        });

    /// <summary>
    /// A live client of the endless request: it reads the stream as it comes (as a browser or SDK does, so Kestrel's
    /// minimum data rate never closes it) until <see cref="Kill"/> drops the connection without a word.
    /// </summary>
    private sealed class Holder(HttpClient http, HttpResponseMessage response, Stream body)
    {
        private long _read;
        public long Read => Interlocked.Read(ref _read);
        public Task Draining { get; private set; } = Task.CompletedTask;

        public void StartDraining() => Draining = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            try
            {
                int n;
                while ((n = await body.ReadAsync(buffer)) > 0) Interlocked.Add(ref _read, n);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or HttpRequestException or OperationCanceledException)
            {
                // the connection was dropped by Kill
            }
        });

        public void Kill()
        {
            body.Dispose();
            response.Dispose();
            http.Dispose();
        }
    }

    /// <summary>Starts the endless request and returns once its first tokens arrived (it then holds the only slot).</summary>
    private static async Task<Holder> HoldTheSlot(OpenAiServer server)
    {
        var http = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Endless, Encoding.UTF8, "application/json") };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var holder = new Holder(http, response, await response.Content.ReadAsStreamAsync());
        holder.StartDraining();
        while (holder.Read < 200) await Task.Delay(5);
        return holder;
    }

    [Fact]
    public async Task AKilledClientDoesNotStallTheOthers()
    {
        var (engine, server) = await Start();
        Holder? holder = null;
        try
        {
            holder = await HoldTheSlot(server);
            // Two clients wait for the only slot (one queued, one admitted when the slot frees) …
            var client = Client(server, engine);
            var sample = File.ReadAllBytes(Path.Combine(ShapesServer.ModelDir, "sample.png"));
            var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
            var waiting = Task.Run(() => client.CompleteChatAsync([ShapesServer.Question(sample, ShapeQuestions.ColourQuestion)], options));
            // … then the first client dies.
            while (engine.Batcher.Queued == 0) await Task.Delay(5);
            holder.Kill();
            var answer = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("purple", answer.Value.Content[0].Text);
            // The dead client's sequence was stopped, not run to its 99,000 tokens.
            Assert.True(engine.Batcher.Steps < 50_000, $"{engine.Batcher.Steps} decode steps: the killed client's sequence kept running");
            Assert.Equal(0, engine.Batcher.Active);
        }
        finally
        {
            holder?.Kill();
            await server.DisposeAsync();
            engine.Dispose();
        }
    }

    [Fact]
    public async Task AFullQueueGets429OverHttpAndAClientThatGivesUpLeavesTheQueue()
    {
        var (engine, server) = await Start();
        Holder? holder = null;
        try
        {
            holder = await HoldTheSlot(server);
            var client = Client(server, engine);
            var sample = File.ReadAllBytes(Path.Combine(ShapesServer.ModelDir, "sample.png"));
            var question = ShapesServer.Question(sample, ShapeQuestions.ColourQuestion);
            var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };

            // One client waits in the only queue place; the next gets 429 with the reason, through the OpenAI client.
            using var giveUp = new CancellationTokenSource();
            var waiting = Task.Run(() => client.CompleteChatAsync([question], options, giveUp.Token));
            while (engine.Batcher.Queued == 0) await Task.Delay(5);
            var refused = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([question], options).WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(429, refused.Status);
            Assert.Contains("the request queue is full (1 waiting); retry later", refused.Message);

            // The waiting client gives up: its queue place is free at once, not when the slot frees.
            giveUp.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(30)));
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (engine.Batcher.Queued != 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
            Assert.Equal(0, engine.Batcher.Queued);

            // So the next client is queued (not refused), and answered once the slot's holder dies.
            var next = Task.Run(() => client.CompleteChatAsync([question], options));
            while (engine.Batcher.Queued == 0 && !next.IsCompleted) await Task.Delay(5);
            holder.Kill();
            Assert.Equal("purple", (await next.WaitAsync(TimeSpan.FromSeconds(30))).Value.Content[0].Text);
        }
        finally
        {
            holder?.Kill();
            await server.DisposeAsync();
            engine.Dispose();
        }
    }

    [Fact]
    public async Task AFullQueueRefusesAndAStoppedSequenceFreesItsSlot()
    {
        using var engine = ChatEngine.Load(ShapesServer.ModelDir, DeviceKind.Cpu, new BatcherOptions(Slots: 1, Capacity: 100_000, MaxQueue: 1));
        var hi = new Qwen2VL.Model.Generation.Conversation();
        hi.AddUser("hi");
        var prompt = engine.BuildPrompt(hi);
        var greedy = Qwen2VL.Model.Generation.SamplingOptions.Greedy;
        var endless = engine.Batcher.TryEnqueue(new BatchRequest(prompt, 99_000, greedy, IgnoreEos: true), out _)!;
        await endless.Tokens.WaitToReadAsync();                       // it holds the only slot
        var queued = engine.Batcher.TryEnqueue(new BatchRequest(prompt, 2, greedy), out var first);
        Assert.NotNull(queued);
        Assert.Equal(ContinuousBatcher.Refusal.None, first);
        Assert.Null(engine.Batcher.TryEnqueue(new BatchRequest(prompt, 2, greedy), out var second));
        Assert.Equal(ContinuousBatcher.Refusal.QueueFull, second);
        endless.Stop();
        Assert.Equal(FinishReason.Cancelled, await endless.Completion.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.NotEqual(FinishReason.Cancelled, await queued!.Completion.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, engine.Batcher.Active);
    }

    [Fact]
    public async Task StoppingTheServerLetsTheRequestInFlightFinish()
    {
        var (engine, server) = await Start();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
            var running = http.PostAsync("/v1/chat/completions", new StringContent(
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
