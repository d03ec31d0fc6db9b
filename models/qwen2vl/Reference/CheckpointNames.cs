namespace Qwen2VL.Model.Reference;

/// <summary>
/// Checkpoint name spellings (spec §2.3). The model asks for canonical = legacy names (<c>visual.*</c>,
/// <c>model.*</c>, <c>lm_head.weight</c>); newer transformers save <c>model.visual.*</c> and
/// <c>model.language_model.*</c> instead (the head stays <c>lm_head.weight</c>).
/// </summary>
public static class CheckpointNames
{
    /// <summary>The stored name for <paramref name="canonicalName"/>, or null when no spelling of it is stored.</summary>
    public static string? Resolve(string canonicalName, ISet<string> available)
    {
        foreach (var candidate in Spellings(canonicalName))
            if (available.Contains(candidate)) return candidate;
        return null;
    }

    /// <summary>Every spelling of a canonical name, legacy first.</summary>
    /// <summary>The legacy (canonical) name of a stored name: <c>model.visual.x</c> → <c>visual.x</c>, <c>model.language_model.x</c> → <c>model.x</c>.</summary>
    public static string Canonical(string stored) =>
        stored.StartsWith("model.visual.", StringComparison.Ordinal) ? stored.Substring("model.".Length)
        : stored.StartsWith("model.language_model.", StringComparison.Ordinal) ? "model." + stored.Substring("model.language_model.".Length)
        : stored.StartsWith("language_model.model.", StringComparison.Ordinal) ? stored.Substring("language_model.".Length)
        : stored == "language_model.lm_head.weight" ? "lm_head.weight"
        : stored;

    public static IEnumerable<string> Spellings(string canonicalName)
    {
        yield return canonicalName;
        if (canonicalName.StartsWith("visual.", StringComparison.Ordinal))
            yield return "model." + canonicalName;                                          // model.visual.*
        else if (canonicalName.StartsWith("model.", StringComparison.Ordinal))
            yield return "model.language_model." + canonicalName["model.".Length..];        // model.language_model.*
    }
}
