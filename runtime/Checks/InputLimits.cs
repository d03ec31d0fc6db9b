namespace Qwen2VL.Runtime;

/// <summary>
/// Every limit on what one request may ask of this program, in one place, with its default. Each exists because an
/// input a few bytes long could otherwise ask for minutes of work or gigabytes of memory; each refusal is a one-line
/// error naming the limit. The README's Reliability section lists them.
/// </summary>
public sealed record InputLimits
{
    public static InputLimits Default { get; } = new();

    /// <summary>Pixels of one decoded image or video frame (width × height), checked from the header before decoding.</summary>
    public long MaxImagePixels { get; init; } = 100_000_000;

    /// <summary>
    /// Pixels of a whole animated GIF as its decoder builds it (frames × canvas), checked from the file's blocks
    /// before decoding: a few KB of 1×1 frames on a 4000×4000 canvas would otherwise composite gigabytes.
    /// </summary>
    public long MaxAnimationPixels { get; init; } = 400_000_000;

    /// <summary>Bytes of one image or video file.</summary>
    public long MaxImageFileBytes { get; init; } = 256L << 20;

    /// <summary>Images plus videos in one request.</summary>
    public int MaxImagesPerRequest { get; init; } = 64;

    /// <summary>Prompt tokens (text, vision placeholders included); null: the model's <c>max_position_embeddings</c>.</summary>
    public int? MaxPromptTokens { get; init; }

    /// <summary>Prompt plus new tokens never exceed the model's <c>max_position_embeddings</c>; this caps new tokens further.</summary>
    public int MaxNewTokens { get; init; } = 1 << 20;

    /// <summary>The limit on prompt tokens for a model whose config says <paramref name="maxPositions"/> (null: unknown).</summary>
    public int PromptTokenLimit(int? maxPositions) => MaxPromptTokens ?? maxPositions ?? DefaultMaxPositions;

    /// <summary>transformers' Qwen2VLConfig default for max_position_embeddings, used when a config leaves it out.</summary>
    public const int DefaultMaxPositions = 32768;

    /// <summary>Throws when a prompt of <paramref name="promptTokens"/> and <paramref name="newTokens"/> more break the limits.</summary>
    public void CheckTokens(int promptTokens, long newTokens, int? maxPositions, string newTokensFlag)
    {
        int promptLimit = PromptTokenLimit(maxPositions);
        if (promptTokens > promptLimit)
            throw new ModelException($"the prompt is {promptTokens} tokens, above the limit of {promptLimit} " +
                                     (MaxPromptTokens is null ? "(the model's max_position_embeddings)" : "(the prompt-token limit)"));
        if (newTokens > MaxNewTokens)
            throw new ModelException($"{newTokensFlag} {newTokens} is above the limit of {MaxNewTokens}");
        int max = maxPositions ?? DefaultMaxPositions;
        if (promptTokens + newTokens > max)
            throw new ModelException($"{newTokensFlag} {newTokens} after a {promptTokens}-token prompt passes the model's max_position_embeddings ({max}); " +
                                     $"at most {Math.Max(0, max - promptTokens)} new tokens fit");
    }

    /// <summary>Throws when a request brings more than <see cref="MaxImagesPerRequest"/> images and videos.</summary>
    public void CheckImageCount(int count)
    {
        if (count > MaxImagesPerRequest)
            throw new ModelException($"{count} images and videos in one request, above the limit of {MaxImagesPerRequest}");
    }
}
