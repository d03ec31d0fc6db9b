using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Qwen2VL.Model.Serving;

namespace Qwen2VL.Server;

/// <summary>OpenAI's response shapes, written with <see cref="Utf8JsonWriter"/> (no reflection, trim-safe).</summary>
internal static class OpenAiJson
{
    /// <summary>One JSON object as the whole response.</summary>
    public static async Task Write(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.WriteAsync(Json(body)).ConfigureAwait(false);
    }

    /// <summary>A <c>chat.completion</c> object with the whole answer.</summary>
    public static Task WriteCompletion(HttpContext ctx, ChatStream stream, string id, long created, string model, string text) =>
        Write(ctx, 200, w =>
        {
            Header(w, id, "chat.completion", created, model);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteEndObject();
            w.WriteString("finish_reason", stream.FinishReason);
            w.WriteEndObject();
            w.WriteEndArray();
            Usage(w, stream);
        });

    /// <summary>
    /// Server-sent events: a first chunk with the assistant role, one <c>chat.completion.chunk</c> per piece of text,
    /// a last chunk with the finish reason (and, when asked, one with the usage), then <c>data: [DONE]</c>.
    /// </summary>
    public static async Task StreamAsync(HttpContext ctx, ChatStream stream, string id, long created, string model, bool includeUsage,
        CancellationToken cancel)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        await Event(ctx, Chunk(id, created, model, w => w.WriteString("role", "assistant"), null), cancel).ConfigureAwait(false);
        await foreach (var piece in stream.ReadAsync(cancel).ConfigureAwait(false))
            await Event(ctx, Chunk(id, created, model, w => w.WriteString("content", piece), null), cancel).ConfigureAwait(false);
        await Event(ctx, Chunk(id, created, model, _ => { }, stream.FinishReason), cancel).ConfigureAwait(false);
        if (includeUsage)
            await Event(ctx, Json(w =>
            {
                Header(w, id, "chat.completion.chunk", created, model);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                Usage(w, stream);
            }), cancel).ConfigureAwait(false);
        await ctx.Response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
        await ctx.Response.Body.FlushAsync(cancel).ConfigureAwait(false);
    }

    private static async Task Event(HttpContext ctx, byte[] json, CancellationToken cancel)
    {
        var body = ctx.Response.Body;
        await body.WriteAsync("data: "u8.ToArray(), cancel).ConfigureAwait(false);
        await body.WriteAsync(json, cancel).ConfigureAwait(false);
        await body.WriteAsync("\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
        await body.FlushAsync(cancel).ConfigureAwait(false);
    }

    private static byte[] Chunk(string id, long created, string model, Action<Utf8JsonWriter> delta, string? finish) => Json(w =>
    {
        Header(w, id, "chat.completion.chunk", created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        delta(w);
        w.WriteEndObject();
        if (finish is null) w.WriteNull("finish_reason"); else w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
    });

    private static void Header(Utf8JsonWriter w, string id, string kind, long created, string model)
    {
        w.WriteString("id", id);
        w.WriteString("object", kind);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static void Usage(Utf8JsonWriter w, ChatStream stream)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", stream.PromptTokens);
        w.WriteNumber("completion_tokens", stream.CompletionTokens);
        w.WriteNumber("total_tokens", stream.PromptTokens + stream.CompletionTokens);
        w.WriteEndObject();
    }

    private static byte[] Json(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
