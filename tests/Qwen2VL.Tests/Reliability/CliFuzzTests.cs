using System.Buffers.Binary;
using System.Diagnostics;
using Qwen2VL.Tests.Pipeline;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// Random mutants (fixed seed) of every kind of file a user hands the CLI — the fixture's inputs and weights, its
/// config.json, a tokenizer.json and a PNG — run in-process through the real entry point. Whatever the bytes, the
/// answer is exit code 0 or 2 and never a stack trace or an internal error, and a refused run leaves its output
/// folder empty.
/// </summary>
public sealed class CliFuzzTests(ITestOutputHelper log) : IDisposable
{
    private const int Seed = 20261207;
    private const int PerKind = 60;
    private readonly string _dir = Directory.CreateTempSubdirectory("qvl-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Shapes(string file) => Path.Combine(AppContext.BaseDirectory, "shapes-model", file);

    [Fact]
    public void MutatedInputsWeightsConfigsTokenizersAndImagesGiveExit0Or2AndNoStackTrace()
    {
        var rng = new Random(Seed);
        var clock = Stopwatch.StartNew();
        var outcomes = new Dictionary<string, int[]>();
        string caseInputs = FixturePaths.Case("a_image_text", "inputs.safetensors");

        // 1. --inputs of forward.
        Fuzz("inputs", File.ReadAllBytes(caseInputs), "inputs.safetensors", rng, outcomes,
            (mutant, output) => ["forward", "--model", FixturePaths.Root, "--inputs", mutant, "--out", Path.Combine(output, "out.safetensors")]);

        // 2. the weights, in a copy of the fixture model folder.
        var model = CopyModel(FixturePaths.Root, "model");
        Fuzz("weights", File.ReadAllBytes(FixturePaths.Model), Path.Combine(model, "model.safetensors"), rng, outcomes,
            (_, output) => ["forward", "--model", model, "--inputs", caseInputs, "--out", Path.Combine(output, "out.safetensors")], inPlace: true);

        // 3. config.json of that folder (the weights restored).
        File.Copy(FixturePaths.Model, Path.Combine(model, "model.safetensors"), overwrite: true);
        Fuzz("config", File.ReadAllBytes(FixturePaths.Config), Path.Combine(model, "config.json"), rng, outcomes,
            (_, output) => ["forward", "--model", model, "--inputs", caseInputs, "--out", Path.Combine(output, "out.safetensors")], inPlace: true);

        // 4. tokenizer.json, through tokenize --jsonl (which writes an output file).
        var jsonl = Path.Combine(_dir, "text.jsonl");
        File.WriteAllText(jsonl, "{\"text\": \"What colour is the shape?\"}\n");
        Fuzz("tokenizer", File.ReadAllBytes(Shapes("tokenizer.json")), "tokenizer.json", rng, outcomes,
            (mutant, output) => ["tokenize", "--tokenizer", mutant, "--jsonl", jsonl, "--out", Path.Combine(output, "out.jsonl")]);

        // 5. a PNG, through generate with the embedded shapes model.
        Fuzz("png", File.ReadAllBytes(Shapes("sample.png")), "image.png", rng, outcomes,
            (mutant, _) => ["generate", "--image", mutant, "--prompt", "What colour is the shape?", "--max-new-tokens", "2"]);

        foreach (var (kind, counts) in outcomes)
            log.WriteLine($"{kind}: {counts[0]} ran (exit 0), {counts[1]} refused (exit 2)");
        log.WriteLine($"{outcomes.Values.Sum(c => c[0] + c[1])} mutants in {clock.Elapsed.TotalSeconds:F1} s");
        // Mutants that are all accepted or all refused would not test the error paths (or the happy path).
        foreach (var (kind, counts) in outcomes)
            Assert.True(counts[1] > 0, $"{kind}: no mutant was refused; the mutations do not reach the checks");
    }

    private string CopyModel(string from, string name)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        foreach (var file in Directory.EnumerateFiles(from)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }

    private void Fuzz(string kind, byte[] original, string target, Random rng, Dictionary<string, int[]> outcomes,
        Func<string, string, string[]> args, bool inPlace = false)
    {
        var counts = outcomes[kind] = new int[2];
        // The unmutated file runs: the harness itself is sound, so refusals below are the mutations' doing.
        string control = inPlace ? target : Path.Combine(_dir, $"{kind}-original-{target}");
        File.WriteAllBytes(control, original);
        string controlOut = Directory.CreateDirectory(Path.Combine(_dir, $"out-{kind}-original")).FullName;
        var ok = InProcessCli.Run(args(control, controlOut));
        Assert.True(ok.ExitCode == 0, $"{kind}: the unmutated file does not run: {ok}");
        Directory.Delete(controlOut, recursive: true);
        for (int i = 0; i < PerKind; i++)
        {
            byte[] mutant = Mutate(original, rng);
            string path = inPlace ? target : Path.Combine(_dir, $"{kind}-{i}-{target}");
            File.WriteAllBytes(path, mutant);
            string output = Directory.CreateDirectory(Path.Combine(_dir, $"out-{kind}-{i}")).FullName;
            var r = InProcessCli.Run(args(path, output));
            string context = $"{kind} mutant {i} ({Describe(mutant, original)}): {r}";
            Assert.True(r.ExitCode is 0 or 2, context);
            Assert.DoesNotContain("   at ", r.Stderr);
            Assert.DoesNotContain("internal error", r.Stderr);
            if (r.ExitCode == 2)
            {
                Assert.True(r.ErrorLines.Length == 1 || r.ErrorLines[..^1].All(l => l.StartsWith("warning: ", StringComparison.Ordinal)), context);
                Assert.Empty(Directory.EnumerateFileSystemEntries(output));
            }
            counts[r.ExitCode == 0 ? 0 : 1]++;
            if (!inPlace) File.Delete(path);
            Directory.Delete(output, recursive: true);
        }
    }

    private static string Describe(byte[] mutant, byte[] original) => $"{mutant.Length} of {original.Length} bytes";

    /// <summary>
    /// One to three edits, biased to the parts that are parsed: for safetensors the header, for text the digits,
    /// quotes and brackets. Byte flips, a run of 0x00/0xFF/0x80 (invalid UTF-8), truncation, insertion, duplication
    /// of a slice, a digit replaced by a long number.
    /// </summary>
    private static byte[] Mutate(byte[] original, Random rng)
    {
        var bytes = new List<byte>(original);
        int parsed = ParsedPrefix(original);
        int edits = 1 + rng.Next(3);
        for (int e = 0; e < edits && bytes.Count > 0; e++)
        {
            int at = rng.Next(4) == 0 ? rng.Next(bytes.Count) : rng.Next(Math.Min(parsed, bytes.Count));
            switch (rng.Next(7))
            {
                case 0: bytes[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: bytes[at] = (byte)rng.Next(256); break;
                case 2: for (int k = 0; k < 1 + rng.Next(4) && at + k < bytes.Count; k++) bytes[at + k] = new byte[] { 0x00, 0xFF, 0x80, 0xC3 }[rng.Next(4)]; break;
                case 3: bytes.RemoveRange(at, bytes.Count - at); break;
                case 4: bytes.InsertRange(at, Enumerable.Range(0, 1 + rng.Next(8)).Select(_ => (byte)"0123456789,:{}[]\"-.e"[rng.Next(20)])); break;
                case 5:
                    int length = Math.Min(bytes.Count - at, 1 + rng.Next(64));
                    bytes.InsertRange(at, bytes.GetRange(at, length));
                    break;
                default:
                    int digit = bytes.FindIndex(Math.Min(at, bytes.Count - 1), b => b is >= (byte)'0' and <= (byte)'9');
                    if (digit >= 0 && digit < parsed)
                        bytes.InsertRange(digit, System.Text.Encoding.ASCII.GetBytes(new[] { "9999999999", "2147483647", "-1", "0", "4294967296", "1e308" }[rng.Next(6)]));
                    else bytes[at] ^= 0x55;
                    break;
            }
        }
        return bytes.ToArray();
    }

    /// <summary>The bytes a parser reads as structure: a safetensors header, or the whole of a text or PNG file.</summary>
    private static int ParsedPrefix(byte[] file)
    {
        if (file.Length >= 8 && file[0] != (byte)'{' && file[0] != 0x89)
        {
            ulong header = BinaryPrimitives.ReadUInt64LittleEndian(file);
            if (header < (ulong)file.Length) return 8 + (int)header;
        }
        return file.Length;
    }
}
