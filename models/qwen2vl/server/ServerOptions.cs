namespace Qwen2VL.Server;

/// <summary>
/// Where the server listens and what it accepts. Defaults bind to the loopback address only: exposing the model on
/// a network is a deliberate <c>--host 0.0.0.0</c>, best with <c>--api-key</c>.
/// </summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port (tests); <see cref="OpenAiServer.BaseUrl"/> tells which.</summary>
    public int Port { get; init; } = 8000;

    /// <summary>When set, every request must carry <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Largest request body accepted (413 above).</summary>
    public long MaxRequestBytes { get; init; } = 20 * 1024 * 1024;

    /// <summary>Largest image accepted, in pixels before resizing (413 above; checked from the header, before decoding).</summary>
    public long MaxImagePixels { get; init; } = 4096L * 4096;

    /// <summary>Images per request at most (413 above).</summary>
    public int MaxImages { get; init; } = 8;

    /// <summary>max_tokens when the request gives none.</summary>
    public int DefaultMaxTokens { get; init; } = 256;
}
