namespace Qwen2VL.Server;

/// <summary>
/// A request the server refuses: the HTTP status and a one-line message, sent as OpenAI's error object
/// (<c>{"error": {"message", "type", "param", "code"}}</c>).
/// </summary>
public sealed class ApiError(int status, string message, string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;

    /// <summary>OpenAI's error type for the status.</summary>
    public string Type => Status switch
    {
        401 => "authentication_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public static ApiError BadRequest(string message, string? param = null) => new(400, message, param);
}
