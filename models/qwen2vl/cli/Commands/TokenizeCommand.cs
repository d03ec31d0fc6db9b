using System.CommandLine;
using System.Text;
using Qwen2VL.Runtime;
using System.Text.Encodings.Web;
using System.Text.Json;
using Qwen2VL.Model.Text;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>tokenize --tokenizer FILE (--text TEXT | --jsonl IN.jsonl --out OUT.jsonl)</c>: encodes with a
/// <c>tokenizer.json</c>. With --text, prints the ids (space separated) and then the decoded text. With --jsonl, each
/// input line <c>{"text": …}</c> becomes <c>{"ids": […], "decoded": …}</c> (special tokens kept in the decoded text).
/// Bad input is one line on stderr and exit code 2; the output file appears only when every line succeeded.
/// </summary>
/// <remarks>Public so that the tests can build and invoke the command with their own output writers.</remarks>
public static class TokenizeCommand
{
    private static readonly JsonWriterOptions LineOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var tokenizerOption = new Option<FileInfo>("--tokenizer") { Description = "Path of a Hugging Face tokenizer.json (Qwen2 byte-level BPE).", Required = true };
        var textOption = new Option<string?>("--text") { Description = "Text to encode; prints the ids, then the decoded text." };
        var jsonlOption = new Option<FileInfo?>("--jsonl") { Description = "JSON Lines input, one {\"text\": ...} object per line." };
        var outOption = new Option<FileInfo?>("--out") { Description = "JSON Lines output for --jsonl: {\"ids\": [...], \"decoded\": ...} per line." };

        var command = new Command("tokenize", "Encode text with a tokenizer.json and decode it back.");
        command.Options.Add(tokenizerOption);
        command.Options.Add(textOption);
        command.Options.Add(jsonlOption);
        command.Options.Add(outOption);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var text = parseResult.GetValue(textOption);
            var jsonl = parseResult.GetValue(jsonlOption);
            var outFile = parseResult.GetValue(outOption);
            if ((text is null) == (jsonl is null))
                throw new TokenizerException("give exactly one of --text or --jsonl");
            if (jsonl is not null && outFile is null)
                throw new TokenizerException("--jsonl needs --out");
            if (text is not null && outFile is not null)
                throw new TokenizerException("--out goes with --jsonl, not --text");

            var tokenizer = Qwen2Tokenizer.Load(parseResult.GetValue(tokenizerOption)!.FullName);
            if (text is not null)
            {
                var ids = tokenizer.Encode(text);
                output.WriteLine(string.Join(' ', ids));
                output.WriteLine(tokenizer.Decode(ids));
            }
            else
            {
                var count = TokenizeJsonl(tokenizer, jsonl!.FullName, outFile!.FullName);
                output.WriteLine($"wrote {count} lines to {outFile.FullName}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>Encodes every line into a temp file beside <paramref name="outPath"/>, then moves it into place.</summary>
    private static int TokenizeJsonl(Qwen2Tokenizer tokenizer, string inPath, string outPath)
    {
        if (!File.Exists(inPath)) throw new TokenizerException($"input file not found: {inPath}");
        InputFile.RequireRegular(inPath, "--jsonl");
        OutputPath.CheckNotAnInput(outPath, "--out", (inPath, "the --jsonl input"));
        var temp = AtomicFile.TempPathFor(outPath); // also removes the temp files of killed writers
        var count = 0;
        try
        {
            using (var stream = File.Create(temp))
            {
                var lineNumber = 0;
                foreach (var line in File.ReadLines(inPath, Encoding.UTF8))
                {
                    lineNumber++;
                    var ids = tokenizer.Encode(ReadText(line, lineNumber, inPath));
                    WriteLine(stream, ids, tokenizer.Decode(ids));
                    count++;
                }
            }
            File.Move(temp, outPath, overwrite: true);
            return count;
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static string ReadText(string line, int lineNumber, string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line, StrictJson.DocumentOptions);
            StrictJson.Validate(doc, $"{path} line {lineNumber}");
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{path} line {lineNumber} is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw new TokenizerException($"{path} line {lineNumber} has no \"text\" string");
            return text.GetString()!;
        }
    }

    private static void WriteLine(Stream stream, IReadOnlyList<int> ids, string decoded)
    {
        using (var w = new Utf8JsonWriter(stream, LineOptions))
        {
            w.WriteStartObject();
            w.WriteStartArray("ids");
            foreach (var id in ids) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteString("decoded", decoded);
            w.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
    }
}
