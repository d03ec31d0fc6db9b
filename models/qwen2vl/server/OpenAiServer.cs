using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Qwen2VL.Model.Serving;
using Qwen2VL.Runtime;

namespace Qwen2VL.Server;

/// <summary>
/// The OpenAI-compatible HTTP API over a <see cref="ChatEngine"/>: <c>POST /v1/chat/completions</c> (JSON or, with
/// <c>stream: true</c>, server-sent events), <c>GET /v1/models</c>, <c>GET /health</c>. Requests are queued into the
/// engine's continuous batcher; a full queue is 429, a too-large body or image 413, a bad request 400 with the reason,
/// a client that disconnects stops its sequence (freeing its slot). Stopping the server lets in-flight requests
/// finish (Kestrel's graceful shutdown) before the engine is drained.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ChatEngine _engine;
    private readonly ServerOptions _options;

    private OpenAiServer(WebApplication app, ChatEngine engine, ServerOptions options)
    {
        _app = app;
        _engine = engine;
        _options = options;
    }

    /// <summary>The address it listens on, e.g. http://127.0.0.1:8000 (the real port when 0 was asked for).</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>Fires when the host begins to stop (Ctrl-C, SIGTERM or <see cref="StopAsync"/>).</summary>
    public CancellationToken Stopping => _app.Lifetime.ApplicationStopping;

    /// <summary>Builds the app and starts listening.</summary>
    public static async Task<OpenAiServer> StartAsync(ChatEngine engine, ServerOptions options, bool handleConsoleSignals = false)
    {
        var address = ParseHost(options.Host);
        if (options.Port is < 0 or > 65535) throw new ModelException($"--port must be in 0..65535, got {options.Port}");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMinutes(2));
        if (!handleConsoleSignals) builder.Services.AddSingleton<IHostLifetime, NoSignalLifetime>();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.Limits.MaxRequestBodySize = null; // enforced by ReadBodyAsync, which answers with a message
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        var server = new OpenAiServer(app, engine, options);
        app.Use(server.Authenticate);
        app.MapGet("/health", (RequestDelegate)server.Health);
        app.MapGet("/v1/models", (RequestDelegate)server.Models);
        app.MapPost("/v1/chat/completions", (RequestDelegate)server.ChatCompletions);
        app.MapFallback((RequestDelegate)(ctx => Fail(ctx, new ApiError(404, $"no route for {ctx.Request.Method} {ctx.Request.Path}"))));
        try
        {
            await app.StartAsync().ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new ModelException($"cannot listen on {options.Host}:{options.Port}: {e.Message.ReplaceLineEndings(" ")}");
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseUrl = bound.Replace("[::]", "localhost", StringComparison.Ordinal);
        return server;
    }

    /// <summary>Returns when the host stops (Ctrl-C or SIGTERM with console signals on).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Stops accepting connections and waits for in-flight requests to finish.</summary>
    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private static IPAddress ParseHost(string host) => host switch
    {
        "localhost" => IPAddress.Loopback,
        "*" or "0.0.0.0" => IPAddress.Any,
        _ => IPAddress.TryParse(host, out var ip) ? ip : throw new ModelException($"--host must be an IP address (or localhost), got '{host}'"),
    };

    /// <summary>With an API key configured, every request needs <c>Authorization: Bearer KEY</c> (compared in constant time).</summary>
    private Task Authenticate(HttpContext ctx, RequestDelegate next)
    {
        if (_options.ApiKey is not { } key) return next(ctx);
        string header = ctx.Request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        bool ok = header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase)
            && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[bearer.Length..].Trim()), Encoding.UTF8.GetBytes(key));
        return ok ? next(ctx) : Fail(ctx, new ApiError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')"));
    }

    private Task Health(HttpContext ctx) => OpenAiJson.Write(ctx, 200, w =>
    {
        w.WriteString("status", "ok");
        w.WriteString("model", _engine.ModelName);
        w.WriteNumber("slots", _engine.Batcher.Options.Slots);
        w.WriteNumber("active", _engine.Batcher.Active);
        w.WriteNumber("queued", _engine.Batcher.Queued);
        w.WriteNumber("decode_steps", _engine.Batcher.Steps);
    });

    private Task Models(HttpContext ctx) => OpenAiJson.Write(ctx, 200, w =>
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", _engine.ModelName);
        w.WriteString("object", "model");
        w.WriteNumber("created", 0);
        w.WriteString("owned_by", "qwen2vl");
        w.WriteNumber("max_model_len", _engine.Batcher.Options.Capacity);
        w.WriteEndObject();
        w.WriteEndArray();
    });

    private async Task ChatCompletions(HttpContext ctx)
    {
        ChatStream stream;
        ChatCompletionRequest request;
        try
        {
            request = ChatCompletionRequest.Parse(await ReadBodyAsync(ctx).ConfigureAwait(false), _options);
            if (request.Model is { } m && m != _engine.ModelName)
                throw new ApiError(404, $"model '{m}' does not exist; this server serves '{_engine.ModelName}'", "model");
            var prompt = _engine.BuildPrompt(request.Conversation);
            var settings = _engine.Settings(request.MaxTokens ?? _options.DefaultMaxTokens, request.Sampling, request.Stop, request.IgnoreEos);
            stream = _engine.TryStart(prompt, settings, out var refusal) ?? throw refusal switch
            {
                ContinuousBatcher.Refusal.Draining => new ApiError(503, "the server is shutting down"),
                _ => new ApiError(429, $"the request queue is full ({_engine.Batcher.Options.MaxQueue} waiting); retry later"),
            };
        }
        catch (ApiError e)
        {
            await Fail(ctx, e).ConfigureAwait(false);
            return;
        }
        catch (ModelException e)
        {
            await Fail(ctx, ApiError.BadRequest(e.Message)).ConfigureAwait(false);
            return;
        }

        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cancel = ctx.RequestAborted;
        try
        {
            if (request.Stream)
                await OpenAiJson.StreamAsync(ctx, stream, id, created, _engine.ModelName, request.IncludeUsage, cancel).ConfigureAwait(false);
            else
            {
                var text = await stream.ReadToEndAsync(cancel).ConfigureAwait(false);
                await OpenAiJson.WriteCompletion(ctx, stream, id, created, _engine.ModelName, text).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            stream.Cancel(); // the client went away: its slot goes to the next request
        }
        catch (ModelException e) when (!ctx.Response.HasStarted)
        {
            await Fail(ctx, new ApiError(500, e.Message)).ConfigureAwait(false);
        }
        finally
        {
            stream.Cancel(); // a no-op once the sequence has finished
        }
    }

    /// <summary>The request body, refused with 413 as soon as it passes the limit (by its Content-Length or while reading).</summary>
    private async Task<byte[]> ReadBodyAsync(HttpContext ctx)
    {
        long limit = _options.MaxRequestBytes;
        if (ctx.Request.ContentLength is { } declared && declared > limit)
            throw new ApiError(413, $"the request body is {declared} bytes, above the limit of {limit}");
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > limit)
                throw new ApiError(413, $"the request body is above the limit of {limit} bytes");
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    private static Task Fail(HttpContext ctx, ApiError e) => OpenAiJson.Write(ctx, e.Status, w =>
    {
        w.WriteStartObject("error");
        w.WriteString("message", e.Message);
        w.WriteString("type", e.Type);
        if (e.Param is null) w.WriteNull("param"); else w.WriteString("param", e.Param);
        w.WriteNull("code");
        w.WriteEndObject();
    });

    /// <summary>A host lifetime that leaves Ctrl-C alone (a server started inside another program, e.g. a test).</summary>
    private sealed class NoSignalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
