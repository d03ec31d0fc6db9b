using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Qwen2VL.Model.Serving;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime;
using Qwen2VL.Server;

namespace Qwen2VL.Bench;

/// <summary>
/// Throughput of <c>serve</c> over real HTTP on 127.0.0.1 for the same 32 concurrent requests (the embedded shapes
/// model, one image and a colour question each), served with continuous batching (32 slots) and one at a time
/// (1 slot: the baseline, each request prefilled and decoded alone). Two workloads: the model's own short answers,
/// and 64-token answers (end ids ignored) where decoding dominates. The answers of both servers must agree.
/// </summary>
internal static class ServeBench
{
    public static async Task<int> Run()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        var dir = Path.Combine(AppContext.BaseDirectory, "shapes-model");
        var images = Scenes().Select(Png).ToList();
        DecodeSteps(dir);
        var workloads = new[] { ("short answers (max_tokens 16)", "\"max_tokens\": 16"), ("64-token answers (ignore_eos)", "\"max_tokens\": 64, \"ignore_eos\": true"),
            ("192-token answers (ignore_eos)", "\"max_tokens\": 192, \"ignore_eos\": true") }
            .Select(w => (Label: w.Item1, Bodies: images.Select(png => Body(png, w.Item2)).ToList())).ToList();
        // Two long-lived servers, as `serve` runs: measured in steady state. .NET compiles hot methods fully only after
        // they have run a while with no new code being compiled (tiered compilation), and each new server compiles
        // new code, so a fresh server per run would time half-compiled code (vision tower and sampler 2-3x slower).
        await using var alone = await Server.StartAsync(dir, 1);
        await using var batched = await Server.StartAsync(dir, 32);
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed < TimeSpan.FromSeconds(4))
            foreach (var (_, bodies) in workloads)
            {
                await alone.Round(bodies);
                await batched.Round(bodies);
            }
        foreach (var (label, bodies) in workloads)
        {
            var (aloneSeconds, aloneAnswers, tokens, aloneProfile) = await alone.Best(5, bodies);
            var (batchedSeconds, batchedAnswers, _, batchedProfile) = await batched.Best(5, bodies);
            if (!aloneAnswers.SequenceEqual(batchedAnswers))
                throw new InvalidOperationException("continuous batching changed an answer");
            Console.WriteLine($"{label}: 32 requests, {tokens} completion tokens");
            Console.WriteLine($"  one at a time (1 slot, baseline): {aloneSeconds:F3} s, {32 / aloneSeconds:F1} requests/s, {tokens / aloneSeconds:F0} tokens/s");
            Console.WriteLine($"  continuous batching (32 slots):   {batchedSeconds:F3} s, {32 / batchedSeconds:F1} requests/s, {tokens / batchedSeconds:F0} tokens/s  = {aloneSeconds / batchedSeconds:F2}x the baseline");
            Console.WriteLine($"    where the model thread's time went, one at a time: {Describe(aloneProfile)}");
            Console.WriteLine($"    where the model thread's time went, batched:       {Describe(batchedProfile)}");
        }
        return 0;
    }

    /// <summary>
    /// <c>serve-2b</c>: the same comparison on the engine (the batcher, no HTTP) with the random-weight checkpoint of
    /// Qwen2-VL-2B dimensions (<c>bench -- 2b</c> writes it): 32 text prompts of <paramref name="promptTokens"/> tokens,
    /// <paramref name="newTokens"/> greedy tokens each (end ids ignored), served by a 1-slot and by a 32-slot batcher
    /// on one loaded model. Here a decode step reads all weights from memory, which batching shares between slots.
    /// </summary>
    public static void TwoB(string dir, int promptTokens, int newTokens)
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        var clock = Stopwatch.StartNew();
        using var model = Qwen2VL.Model.Compiled.Qwen2VLModel.Load(dir, DeviceKind.Cpu, Qwen2VL.Runtime.Aot.KernelOptions.Jit, bf16Weights: false);
        Console.WriteLine($"random-weight model with Qwen2-VL-2B dimensions, f32 weights (a bf16 model cannot be batched yet: its prefill cache is bf16, the slot cache f32), loaded in {clock.Elapsed.TotalSeconds:F0} s");
        var rng = new Random(5);
        var prompts = Enumerable.Range(0, 32)
            .Select(_ => new Qwen2VL.Model.Compiled.ForwardInputs(Enumerable.Range(0, promptTokens).Select(_ => (long)rng.Next(1000, 150000)).ToArray(), 1, promptTokens))
            .ToList();
        (double Seconds, List<long[]> Answers, BatcherProfile Profile) Serve(int slots)
        {
            using var batcher = new ContinuousBatcher(model, [], 151643, new BatcherOptions(slots, promptTokens + newTokens + 1, 64));
            var watch = Stopwatch.StartNew();
            var sequences = prompts.Select(p => batcher.TryEnqueue(new BatchRequest(p, newTokens, Qwen2VL.Model.Generation.SamplingOptions.Greedy, IgnoreEos: true), out _)
                ?? throw new InvalidOperationException("the batcher refused a request")).ToList();
            var answers = sequences.Select(sq =>
            {
                sq.Completion.GetAwaiter().GetResult();
                var ids = new List<long>();
                while (sq.Tokens.TryRead(out long id)) ids.Add(id);
                return ids.ToArray();
            }).ToList();
            return (watch.Elapsed.TotalSeconds, answers, batcher.Profile);
        }
        var (alone, aloneAnswers, aloneProfile) = Serve(1);
        var (batched, batchedAnswers, batchedProfile) = Serve(32);
        if (!aloneAnswers.Zip(batchedAnswers).All(p => p.First.SequenceEqual(p.Second)))
            throw new InvalidOperationException("continuous batching changed an answer");
        int tokens = 32 * newTokens;
        Console.WriteLine($"32 requests of {promptTokens} prompt tokens, {newTokens} new tokens each (greedy, answers identical in both):");
        Console.WriteLine($"  one at a time (1 slot, baseline): {alone:F1} s, {tokens / alone:F2} tokens/s");
        Console.WriteLine($"  continuous batching (32 slots):   {batched:F1} s, {tokens / batched:F2} tokens/s  = {alone / batched:F2}x the baseline");
        Console.WriteLine($"    one at a time: {Describe(aloneProfile)}");
        Console.WriteLine($"    batched:       {Describe(batchedProfile)}");
    }

    /// <summary>
    /// The engine alone (<c>serve-steps</c>, and first in <c>serve</c>): time of one decode step with 1 and with 32
    /// active slots (no HTTP, no sampling), with 64 and with 256 positions already cached in every slot.
    /// </summary>
    public static void DecodeSteps(string dir, int steps = 200)
    {
        using var model = Qwen2VL.Model.Compiled.Qwen2VLModel.Load(dir, DeviceKind.Cpu);
        // Warm-up by time, not by count: .NET promotes hot methods to optimised code only after a delay, and 100 steps
        // of one slot take 10 ms, so without this the first timings below would be of unoptimised code.
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed < TimeSpan.FromSeconds(2))
            foreach (int slots in new[] { 1, 32 })
                Steps(model, slots, 64, 0, 50);
        foreach (int cached in new[] { 64, 256 })
            foreach (int slots in new[] { 32, 1 })
            {
                double ms = Steps(model, slots, cached, 100, steps);
                Console.WriteLine($"engine only, {cached}+ cached positions: one decode step of {slots,2} slot(s) {ms:F3} ms = {ms / slots:F4} ms per token");
            }
    }

    /// <summary>Milliseconds per decode step of <paramref name="slots"/> sequences with <paramref name="cached"/> positions each.</summary>
    private static double Steps(Qwen2VL.Model.Compiled.Qwen2VLModel model, int slots, int cached, int warmup, int steps)
    {
        using var cache = model.CreateSlotCache(slots, cached + warmup + steps + 1);
        using var prefill = model.CreateCache(1, cached);
        var ids = Enumerable.Range(0, cached).Select(i => (long)(i % 300)).ToArray();
        var start = model.Embed(new Qwen2VL.Model.Compiled.ForwardInputs(ids, 1, cached));
        model.DecodeWithCache(prefill, start.Embeddings, start.PositionIds, start.AttentionMask, cached);
        for (int s = 0; s < slots; s++) cache.Place(s, prefill, 0, cached);
        var active = Enumerable.Range(0, slots).ToList();
        var tokens = Enumerable.Repeat(5L, slots).ToArray();
        var positions = Enumerable.Repeat((long)cached, 3 * slots).ToArray();
        for (int i = 0; i < warmup; i++) model.DecodeSlots(cache, tokens, positions, active);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) model.DecodeSlots(cache, tokens, positions, active);
        return clock.Elapsed.TotalMilliseconds / steps;
    }

    /// <summary>The batcher's phases in milliseconds, and how many of the rows its decode steps computed were live.</summary>
    private static string Describe(BatcherProfile p) =>
        $"prefill {p.Prefill * 1e3:F1} ms ({p.Prefills} batches; vision and embeddings {p.Embed * 1e3:F1} ms), decode steps {p.Decode * 1e3:F1} ms ({p.Steps} steps, {(p.Steps == 0 ? 0 : p.Decode * 1e3 / p.Steps):F3} ms each, "
        + $"{p.TokenSteps} of {p.SlotSteps} rows live), sampling {p.Sample * 1e3:F1} ms, waiting {p.Idle * 1e3:F1} ms";

    /// <summary>A running <c>serve</c> with a given number of slots, and an HTTP client for it.</summary>
    private sealed class Server : IAsyncDisposable
    {
        private readonly ChatEngine _engine;
        private readonly OpenAiServer _server;
        private readonly HttpClient _http;

        private Server(ChatEngine engine, OpenAiServer server)
        {
            _engine = engine;
            _server = server;
            _http = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        }

        public static async Task<Server> StartAsync(string dir, int slots)
        {
            var engine = ChatEngine.Load(dir, DeviceKind.Cpu, new BatcherOptions(slots, 320, 64));
            return new Server(engine, await OpenAiServer.StartAsync(engine, new ServerOptions { Port = 0 }));
        }

        /// <summary>Best wall time of n rounds, with its answers, tokens and the batcher's phases during it.</summary>
        public async Task<(double Seconds, List<string> Answers, int Tokens, BatcherProfile Profile)> Best(int n, List<string> bodies)
        {
            var rounds = new List<(double, List<string>, int, BatcherProfile)>();
            for (int i = 0; i < n; i++) rounds.Add(await Round(bodies));
            return rounds.MinBy(r => r.Item1);
        }

        /// <summary>Sends every body at once and times until the last answer.</summary>
        public async Task<(double, List<string>, int, BatcherProfile)> Round(List<string> bodies)
        {
            var before = _engine.Batcher.Profile;
            var clock = Stopwatch.StartNew();
            var replies = await Task.WhenAll(bodies.Select(async body =>
            {
                var response = await _http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException(doc.RootElement.GetRawText());
                return (doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!,
                    doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            }));
            double seconds = clock.Elapsed.TotalSeconds;
            return (seconds, replies.Select(r => r.Item1).ToList(), replies.Sum(r => r.Item2), _engine.Batcher.Profile.Since(before));
        }

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            await _server.DisposeAsync();
            _engine.Dispose();
        }
    }

    private static string Body(byte[] png, string extra) =>
        $"{{\"messages\": [{{\"role\": \"user\", \"content\": [{{\"type\": \"image_url\", \"image_url\": {{\"url\": \"data:image/png;base64,{Convert.ToBase64String(png)}\"}}}}, {{\"type\": \"text\", \"text\": \"{ShapeQuestions.ColourQuestion}\"}}]}}], \"temperature\": 0, {extra}}}";

    /// <summary>The 32 scenes of the serve tests: one shape each, colours, kinds and sizes varied.</summary>
    private static IEnumerable<ShapeScene> Scenes()
    {
        var colours = Enum.GetValues<ShapeColour>();
        var kinds = Enum.GetValues<ShapeKind>();
        for (int i = 0; i < 32; i++)
        {
            int w = 56 + 8 * (i % 5), h = 56 + 8 * (i % 3);
            yield return new ShapeScene(w, h, [new Shape(kinds[i % 3], colours[i % colours.Length], ShapeRegion.Center, w / 2.0, h / 2.0, 14 + i % 4)]);
        }
    }

    private static byte[] Png(ShapeScene scene)
    {
        var path = Path.Combine(Path.GetTempPath(), $"qvl-bench-{Guid.NewGuid():N}.png");
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
