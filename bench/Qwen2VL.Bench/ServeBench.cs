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
        foreach (var (label, extra) in new[] { ("short answers (max_tokens 16)", "\"max_tokens\": 16"), ("64-token answers (ignore_eos)", "\"max_tokens\": 64, \"ignore_eos\": true"),
            ("192-token answers (ignore_eos)", "\"max_tokens\": 192, \"ignore_eos\": true") })
        {
            var bodies = images.Select(png => Body(png, extra)).ToList();
            await Serve(dir, 1, bodies); // warm-up: JIT of both paths
            await Serve(dir, 32, bodies);
            var (alone, aloneAnswers, tokens) = Best(3, () => Serve(dir, 1, bodies));
            var (batched, batchedAnswers, _) = Best(3, () => Serve(dir, 32, bodies));
            if (!aloneAnswers.SequenceEqual(batchedAnswers))
                throw new InvalidOperationException("continuous batching changed an answer");
            Console.WriteLine($"{label}: 32 requests, {tokens} completion tokens");
            Console.WriteLine($"  one at a time (1 slot, baseline): {alone:F3} s, {32 / alone:F1} requests/s, {tokens / alone:F0} tokens/s");
            Console.WriteLine($"  continuous batching (32 slots):   {batched:F3} s, {32 / batched:F1} requests/s, {tokens / batched:F0} tokens/s  = {alone / batched:F2}x the baseline");
        }
        return 0;
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

    /// <summary>Best wall time of n runs (each a fresh server), with its answers.</summary>
    private static (double Seconds, List<string> Answers, int Tokens) Best(int n, Func<Task<(double, List<string>, int)>> run)
    {
        var results = Enumerable.Range(0, n).Select(_ => run().GetAwaiter().GetResult()).ToList();
        return results.MinBy(r => r.Item1);
    }

    /// <summary>Starts a server with the given slots, sends every body at once, and times until the last answer.</summary>
    private static async Task<(double, List<string>, int)> Serve(string dir, int slots, List<string> bodies)
    {
        using var engine = ChatEngine.Load(dir, DeviceKind.Cpu, new BatcherOptions(slots, 320, 64));
        await using var server = await OpenAiServer.StartAsync(engine, new ServerOptions { Port = 0 });
        using var http = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
        var clock = Stopwatch.StartNew();
        var replies = await Task.WhenAll(bodies.Select(async body =>
        {
            var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException(doc.RootElement.GetRawText());
            return (doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!,
                doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }));
        double seconds = clock.Elapsed.TotalSeconds;
        return (seconds, replies.Select(r => r.Item1).ToList(), replies.Sum(r => r.Item2));
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
