using System.Text.Json.Nodes;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// <c>qwen2vl forward</c> as a user runs it: the no-argument example prints its comparison table, a run on case a
/// writes the fixture names and shapes, and every user error is one line on stderr, exit code 2, no output file.
/// </summary>
public sealed class ForwardCommandTests
{
    private static string CaseA => FixturePaths.Case("a_image_text", "inputs.safetensors");

    [Fact]
    public void WithoutArgumentsTheEmbeddedExampleMatchesTransformers()
    {
        var r = CliRunner.Run("forward");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        foreach (var name in new[] { "position_ids", "rope_deltas", "image_embeds", "hidden_states[2]", "logits", "loss", "generated_new_tokens" })
            Assert.Matches($@"(?m)^\s+{System.Text.RegularExpressions.Regex.Escape(name)}\s.*\sok$", r.Stdout);
        Assert.Contains("All outputs match.", r.Stdout);
    }

    [Fact]
    public void CaseAWritesTheFixtureNamesAndShapes()
    {
        using var dir = new TempDirectory();
        var r = CliRunner.Run("forward", "--model", FixturePaths.Root, "--inputs", CaseA, "--out", dir.File("out.safetensors"), "--generate", "8");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        using var file = SafetensorsFile.Open(dir.File("out.safetensors"));
        var shapes = file.Tensors.ToDictionary(t => t.Key, t => (t.Value.DType, string.Join(",", t.Value.Shape)));
        Assert.Equal(new Dictionary<string, (SafetensorsDType, string)>
        {
            ["position_ids"] = (SafetensorsDType.I64, "3,1,19"),
            ["rope_deltas"] = (SafetensorsDType.I64, "1,1"),
            ["image_embeds"] = (SafetensorsDType.F32, "6,64"),
            ["hidden_states"] = (SafetensorsDType.F32, "3,1,19,64"),
            ["logits"] = (SafetensorsDType.F32, "1,19,512"),
            ["loss"] = (SafetensorsDType.F32, ""),
            ["generated_new_tokens"] = (SafetensorsDType.I64, "1,8"),
        }, shapes);
        using var expected = SafetensorsFile.Open(FixturePaths.Case("a_image_text", "expected.safetensors"));
        Assert.Equal(expected.ReadInt64("generated_new_tokens"), file.ReadInt64("generated_new_tokens"));
        Assert.Equal(expected.ReadInt64("position_ids"), file.ReadInt64("position_ids"));
        Assert.Single(Directory.GetFiles(dir.Path)); // no temporary file left over
    }

    public static TheoryData<string, string> BrokenInputs => new()
    {
        { "missing-inputs", "not found" },
        { "broken-safetensors", "header" },
        { "config-missing-key", "hidden_size" },
        { "id-outside-vocab", "9999" },
        { "grid-mismatch", "image_grid_thw" },
        { "image-token-count", "image tokens" },
        { "missing-model-dir", "model directory not found" },
    };

    [Theory]
    [MemberData(nameof(BrokenInputs))]
    public void UserErrorsAreOneLineExitCodeTwoAndNoOutputFile(string problem, string named)
    {
        using var dir = new TempDirectory();
        string model = FixturePaths.Root, inputs = CaseA, output = dir.File("out.safetensors");
        switch (problem)
        {
            case "missing-inputs":
                inputs = dir.File("absent.safetensors");
                break;
            case "broken-safetensors":
                inputs = dir.File("broken.safetensors");
                var bytes = File.ReadAllBytes(CaseA);
                bytes[3] = 0x7f; // header length far past the end of the file
                File.WriteAllBytes(inputs, bytes);
                break;
            case "config-missing-key":
                model = dir.File("model");
                Directory.CreateDirectory(model);
                var config = JsonNode.Parse(File.ReadAllText(FixturePaths.Config))!.AsObject();
                config.Remove("hidden_size");
                File.WriteAllText(Path.Combine(model, "config.json"), config.ToJsonString());
                File.Copy(FixturePaths.Model, Path.Combine(model, "model.safetensors"));
                break;
            case "id-outside-vocab":
            case "grid-mismatch":
            case "image-token-count":
                inputs = dir.File("edited.safetensors");
                Rewrite(CaseA, inputs, problem);
                break;
            case "missing-model-dir":
                model = dir.File("no-such-model");
                break;
        }

        var r = CliRunner.Run("forward", "--model", model, "--inputs", inputs, "--out", output);
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{r.Stderr}");
        Assert.Contains(named, lines[0]);
        Assert.DoesNotContain(" at ", lines[0]);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(dir.Path, "out.safetensors*"));
    }

    /// <summary>Copies case a's inputs with one problem planted.</summary>
    private static void Rewrite(string source, string target, string problem)
    {
        using var file = SafetensorsFile.Open(source);
        var entries = new List<SafetensorsEntry>();
        foreach (var (name, info) in file.Tensors)
        {
            if (info.DType == SafetensorsDType.I64)
            {
                var values = file.ReadInt64(name);
                if (name == "input_ids" && problem == "id-outside-vocab") values[4] = 9999;
                if (name == "input_ids" && problem == "image-token-count") values[Array.IndexOf(values, 502L)] = 7;
                if (name == "image_grid_thw" && problem == "grid-mismatch") values[1] += 2;
                entries.Add(SafetensorsEntry.I64(name, values, info.Shape));
            }
            else if (info.DType == SafetensorsDType.F32)
                entries.Add(SafetensorsEntry.F32(name, file.ReadFloat32(name), info.Shape));
            else
                entries.Add(new SafetensorsEntry(name, info.DType, info.Shape, file.ReadBytes(name)));
        }
        SafetensorsWriter.Write(target, entries);
    }
}
