using System.CommandLine;
using Qwen2VL.Model.Serving;
using Qwen2VL.Runtime;
using Qwen2VL.Server;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>serve</c>: the OpenAI-compatible HTTP API (<c>/v1/chat/completions</c>, <c>/v1/models</c>, <c>/health</c>) with
/// continuous batching, until Ctrl-C, which lets the requests in flight finish first.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Model directory (config.json, weights, tokenizer.json). Default: the embedded shapes model." };
        var host = new Option<string>("--host") { Description = "Address to listen on (an IP address or localhost; 0.0.0.0 for every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0 = any free port).", DefaultValueFactory = _ => 8000 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every request." };
        var maxBatch = new Option<int>("--max-batch") { Description = "Sequences decoded together (continuous batching slots).", DefaultValueFactory = _ => 8 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests waiting for a slot at most; more get 429.", DefaultValueFactory = _ => 64 };
        var context = new Option<int>("--max-context") { Description = "Prompt + answer tokens per request at most.", DefaultValueFactory = _ => 1024 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "max_tokens when a request gives none.", DefaultValueFactory = _ => 256 };
        var maxBody = new Option<long>("--max-request-bytes") { Description = "Largest request body; larger ones get 413.", DefaultValueFactory = _ => 20L * 1024 * 1024 };
        var maxPixels = new Option<long>("--max-image-pixels") { Description = "Largest image (width·height before resizing); larger ones get 413.", DefaultValueFactory = _ => 4096L * 4096 };
        var device = DeviceOption.Create();
        var command = new Command("serve", "OpenAI-compatible HTTP server with continuous batching (POST /v1/chat/completions, GET /v1/models, GET /health).");
        foreach (var option in new Option[] { model, host, port, apiKey, maxBatch, maxQueue, context, maxTokens, maxBody, maxPixels, device })
            command.Options.Add(option);
        var kernels = new KernelFlags();
        kernels.AddTo(command);
        command.SetAction(parse =>
        {
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey),
                DefaultMaxTokens = Positive(parse.GetValue(maxTokens), "--max-tokens"),
                MaxRequestBytes = Positive(parse.GetValue(maxBody), "--max-request-bytes"),
                MaxImagePixels = Positive(parse.GetValue(maxPixels), "--max-image-pixels"),
            };
            var batcher = new BatcherOptions(Positive(parse.GetValue(maxBatch), "--max-batch"), Positive(parse.GetValue(context), "--max-context"),
                parse.GetValue(maxQueue) >= 0 ? parse.GetValue(maxQueue) : throw new ModelException("--max-queue must be ≥ 0"));
            var kind = DeviceOption.Read(parse, device);
            var dir = parse.GetValue(model) ?? DefaultModel.ShapesDirectory;
            return Run(dir, kind, batcher, options, kernels.Read(parse)).GetAwaiter().GetResult();
        });
        return command;
    }

    private static async Task<int> Run(string dir, DeviceKind device, BatcherOptions batcher, ServerOptions options, Qwen2VL.Runtime.Aot.KernelOptions kernels)
    {
        using var engine = ChatEngine.Load(dir, device, batcher, kernels);
        var server = await OpenAiServer.StartAsync(engine, options, handleConsoleSignals: true);
        Console.Error.WriteLine($"serving '{engine.ModelName}' on {server.BaseUrl} (OpenAI API at {server.BaseUrl}/v1; {batcher.Slots} slots, queue {batcher.MaxQueue}){(options.ApiKey is null ? "" : "; API key required")}; Ctrl-C to stop");
        await server.WaitForShutdownAsync();
        Console.Error.WriteLine("stopped: in-flight requests finished");
        await server.DisposeAsync();
        return 0;
    }

    private static T Positive<T>(T value, string name) where T : System.Numerics.INumber<T> =>
        value > T.Zero ? value : throw new ModelException($"{name} must be > 0, got {value}");
}
