using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training;

/// <summary>
/// The files of the model a run trains, read into memory once when the run starts: config.json and the files a
/// user of the checkpoint needs beside the weights (tokenizer, chat template, generation and preprocessor configs).
/// Every checkpoint the run saves writes them from here, never from the folder it started from: on resume that
/// folder is a checkpoint, which keeping the last two deletes two saves later.
/// </summary>
public sealed record RunFiles(string ConfigJson, IReadOnlyDictionary<string, byte[]> Extra)
{
    /// <summary>Copied into every checkpoint when the source has them (Hugging Face's names).</summary>
    public static readonly string[] CompanionFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
        "generation_config.json", "chat_template.json", "chat_template.jinja", "preprocessor_config.json",
    ];

    public static RunFiles Read(string dir)
    {
        var config = InputFile.ReadAllBytes(Path.Combine(dir, "config.json"), "config.json");
        var extra = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var file in CompanionFiles)
        {
            var path = Path.Combine(dir, file);
            if (File.Exists(path)) extra[file] = InputFile.ReadAllBytes(path, file);
        }
        return new RunFiles(System.Text.Encoding.UTF8.GetString(config), extra);
    }
}
