using System.Text.Json;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Text;

/// <summary>
/// Where a checkpoint keeps its chat template, and whether it is the one this build renders. transformers reads it
/// from <c>chat_template.jinja</c>, <c>chat_template.json</c> (<c>{"chat_template": "..."}</c>) or the
/// <c>chat_template</c> key of <c>tokenizer_config.json</c> (a string, or a list of named templates whose
/// <c>default</c> one is used). There is no maintained Jinja engine for .NET, so the Qwen2-VL template is built in
/// (<see cref="ChatTemplate"/>, written out in C# and tested against transformers' renderings) and any other template
/// is refused in one line rather than silently replaced.
/// </summary>
public static class ChatTemplateFiles
{
    /// <summary>The Qwen2-VL-Instruct template as released (the chat_template.json of Qwen2-VL-2B-Instruct, kept in tests/tokenizer/qwen2-vl).</summary>
    public const string Qwen2VLJinja = """
{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system
You are a helpful assistant.<|im_end|>
{% endif %}<|im_start|>{{ message['role'] }}
{% if message['content'] is string %}{{ message['content'] }}<|im_end|>
{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>
{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}
""";

    /// <summary>
    /// Checks every template file in <paramref name="modelDir"/>; returns the files that hold the Qwen2-VL template
    /// (empty when there are none: the built-in template is used). Another template is a <see cref="ModelException"/>.
    /// </summary>
    public static IReadOnlyList<string> Check(string modelDir)
    {
        var found = new List<string>();
        foreach (var (file, template) in Templates(modelDir))
        {
            if (!IsQwen2VL(template))
                throw new ModelException(
                    $"{file}: the chat template is not Qwen2-VL's; this build renders only the Qwen2-VL template (built in) and has no Jinja engine: use the released Qwen2-VL template or remove the template file to use the built-in one");
            found.Add(file);
        }
        return found;
    }

    /// <summary>The same text, allowing only a different line ending or a trailing newline.</summary>
    public static bool IsQwen2VL(string template) =>
        template.ReplaceLineEndings("\n").TrimEnd('\n') == Qwen2VLJinja;

    private static IEnumerable<(string File, string Template)> Templates(string modelDir)
    {
        string jinja = Path.Combine(modelDir, "chat_template.jinja");
        if (File.Exists(jinja)) yield return (jinja, Read(jinja));
        string json = Path.Combine(modelDir, "chat_template.json");
        if (File.Exists(json))
        {
            using var doc = Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t)
                || t.ValueKind != JsonValueKind.String)
                throw new ModelException($"{json}: expected an object with a string \"chat_template\"");
            yield return (json, t.GetString()!);
        }
        string tokenizerConfig = Path.Combine(modelDir, "tokenizer_config.json");
        if (File.Exists(tokenizerConfig))
        {
            using var doc = Parse(tokenizerConfig);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("chat_template", out var t))
            {
                if (t.ValueKind == JsonValueKind.String)
                    yield return (tokenizerConfig, t.GetString()!);
                else if (t.ValueKind == JsonValueKind.Array)
                {
                    // A list of {"name", "template"}: the "default" one is what apply_chat_template uses.
                    foreach (var entry in t.EnumerateArray())
                        if (entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("name", out var name)
                            && name.ValueKind == JsonValueKind.String && name.GetString() == "default"
                            && entry.TryGetProperty("template", out var body) && body.ValueKind == JsonValueKind.String)
                            yield return (tokenizerConfig + " (default)", body.GetString()!);
                }
                else if (t.ValueKind != JsonValueKind.Null)
                    throw new ModelException($"{tokenizerConfig}: \"chat_template\" must be a string or a list of named templates");
            }
        }
    }

    private static string Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelException($"{path}: cannot read ({e.Message.ReplaceLineEndings(" ")})", e);
        }
    }

    private static JsonDocument Parse(string path)
    {
        try { return JsonDocument.Parse(Read(path)); }
        catch (JsonException e)
        {
            throw new ModelException($"{path}: invalid JSON at line {(e.LineNumber ?? 0) + 1}", e);
        }
    }
}
