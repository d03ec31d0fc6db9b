using System.Text.Json.Nodes;
using Qwen2VL.Model.Training.Synthetic;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// The inputs that escaped as stack traces (finding 3), configs transformers would refuse (finding 8), unbounded work
/// and outputs that overwrite inputs (finding 10): each is one line and exit code 2, and nothing is written.
/// </summary>
public sealed class HostileInputTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string CaseA => FixturePaths.Case("a_image_text", "inputs.safetensors");

    /// <summary>A copy of the fixture model with config.json replaced by <paramref name="configText"/>.</summary>
    private string ModelWithConfig(string configText, string name = "model")
    {
        var dir = Directory.CreateDirectory(_dir.File(name)).FullName;
        File.Copy(FixturePaths.Model, Path.Combine(dir, "model.safetensors"), overwrite: true);
        File.WriteAllText(Path.Combine(dir, "config.json"), configText);
        return dir;
    }

    private InProcessCli.Result Forward(string model, params string[] more) =>
        InProcessCli.Run(["forward", "--model", model, "--inputs", CaseA, "--out", _dir.File("out.safetensors"), .. more]);

    private void AssertRefused(InProcessCli.Result r, string expected)
    {
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Single(r.ErrorLines);
        Assert.StartsWith("error: ", r.Stderr);
        Assert.Contains(expected, r.Stderr);
        Assert.False(File.Exists(_dir.File("out.safetensors")));
    }

    private static JsonObject Config() => JsonNode.Parse(File.ReadAllText(FixturePaths.Config))!.AsObject();

    [Theory]
    [InlineData("duplicate", "key 'hidden_size' appears twice")]
    [InlineData("trailing-comma", "invalid JSON")]
    [InlineData("invalid-utf8", "config.json: invalid")]
    public void AConfigPythonWouldReadDifferentlyIsRefused(string kind, string expected)
    {
        var text = File.ReadAllText(FixturePaths.Config).TrimEnd();
        text = kind switch
        {
            "duplicate" => text[..^1] + ", \"hidden_size\": 32}",
            "trailing-comma" => text[..^1] + ",}",
            _ => text.Replace("\"qwen2_vl\"", "\"qwen2_vl\\u00e9\"").Replace("\\u00e9", "\u00e9"),
        };
        var dir = ModelWithConfig(text);
        if (kind == "invalid-utf8")
        {
            var bytes = File.ReadAllBytes(Path.Combine(dir, "config.json"));
            int at = Array.IndexOf(bytes, (byte)0xC3);
            bytes[at + 1] = 0x28; // C3 28: a lead byte without its continuation
            File.WriteAllBytes(Path.Combine(dir, "config.json"), bytes);
        }
        AssertRefused(Forward(dir), expected);
    }

    [Theory]
    [InlineData("num_attention_heads", 0, "num_attention_heads = 0 must be at least 1")]
    [InlineData("num_attention_heads", 3, "hidden_size = 64 is not divisible by num_attention_heads = 3")]
    [InlineData("num_hidden_layers", -1, "num_hidden_layers = -1 must be at least 1")]
    [InlineData("vision_config.depth", 0, "vision_config.depth = 0 must be at least 1")]
    [InlineData("mrope", 0, "mrope_section = [2, 3, 2] must be three non-negative numbers summing to half the head size (8)")]
    [InlineData("num_key_value_heads", 3, "num_attention_heads = 4 is not divisible by num_key_value_heads = 3")]
    public void AConfigTransformersWouldRefuseIsRefused(string key, int value, string expected)
    {
        var config = Config();
        if (key == "mrope") config["rope_scaling"]!["mrope_section"] = new JsonArray(2, 3, 2);
        else if (key.StartsWith("vision_config.", StringComparison.Ordinal)) config["vision_config"]![key["vision_config.".Length..]] = value;
        else config[key] = value;
        AssertRefused(Forward(ModelWithConfig(config.ToJsonString())), expected);
    }

    [Fact]
    public void UnusedCheckpointTensorsAreAWarningAndAnErrorWithStrict()
    {
        var dir = ModelWithConfig(File.ReadAllText(FixturePaths.Config));
        using (var source = SafetensorsFile.Open(FixturePaths.Model))
        {
            var entries = source.Tensors.Keys.Select(n => SafetensorsEntry.F32(n, source.ReadFloat32(n), source.Info(n).Shape)).ToList();
            entries.Add(SafetensorsEntry.F32("model.layers.7.mlp.gate_proj.weight", [1f, 2f], 2));
            SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries);
        }
        var r = Forward(dir);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("warning: the checkpoint holds 1 tensor(s) the model does not use: model.layers.7.mlp.gate_proj.weight", r.Stderr);
        File.Delete(_dir.File("out.safetensors"));
        AssertRefused(Forward(dir, "--strict"), "model.layers.7.mlp.gate_proj.weight (--strict)");
    }

    [Fact]
    public void HugeDimensionsAndWrappingGridsAreOneLineErrors()
    {
        // A zero-byte tensor with a dimension past int32: valid safetensors, unusable here.
        var inputs = _dir.File("inputs.safetensors");
        using (var source = SafetensorsFile.Open(CaseA))
        {
            var entries = source.Tensors.Keys.Select(n => new SafetensorsEntry(n, source.Info(n).DType, source.Info(n).Shape, source.ReadBytes(n))).ToList();
            entries.Add(new SafetensorsEntry("extra", SafetensorsDType.F32, [1L << 40, 0], []));
            SafetensorsWriter.Write(inputs, entries);
        }
        var r = InProcessCli.Run("forward", "--model", FixturePaths.Root, "--inputs", inputs, "--out", _dir.File("out.safetensors"));
        AssertRefused(r, "has a dimension above 2147483647");

        // image_grid_thw rows whose t·h·w wraps an int32 to a small number.
        using (var source = SafetensorsFile.Open(CaseA))
        {
            var entries = source.Tensors.Keys.Where(n => n != "image_grid_thw")
                .Select(n => new SafetensorsEntry(n, source.Info(n).DType, source.Info(n).Shape, source.ReadBytes(n))).ToList();
            entries.Add(SafetensorsEntry.I64("image_grid_thw", [65536, 65536, 2], 1, 3));
            SafetensorsWriter.Write(inputs, entries);
        }
        r = InProcessCli.Run("forward", "--model", FixturePaths.Root, "--inputs", inputs, "--out", _dir.File("out.safetensors"));
        AssertRefused(r, "grid_thw row 0 [65536, 65536, 2]");
    }

    [Fact]
    public void NewTokensAndPromptsPastTheModelsPositionsAreRefused()
    {
        AssertRefused(Forward(FixturePaths.Root, "--generate", "2147483600"), "--generate 2147483600 is above the limit");
        AssertRefused(Forward(FixturePaths.Root, "--generate", "5000"), "passes the model's max_position_embeddings (4096)");
        var r = InProcessCli.Run("generate", "--max-new-tokens", "2147483647", "--prompt", "What colour is the shape?",
            "--image", Path.Combine(AppContext.BaseDirectory, "shapes-model", "sample.png"));
        AssertRefused(r, "--max-new-tokens 2147483647 is above the limit");
        var longPrompt = string.Join(' ', Enumerable.Repeat("red", 40_000));
        r = InProcessCli.Run("generate", "--prompt", longPrompt, "--image", Path.Combine(AppContext.BaseDirectory, "shapes-model", "sample.png"));
        AssertRefused(r, "the prompt is ");
    }

    [Fact]
    public void AnOutputThatIsAnInputIsRefusedAndKilledWritersTempFilesGo()
    {
        var inputs = _dir.File("inputs.safetensors");
        File.Copy(CaseA, inputs);
        var before = File.ReadAllBytes(inputs);
        var r = InProcessCli.Run("forward", "--model", FixturePaths.Root, "--inputs", inputs, "--out", inputs);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is the --inputs file", r.Stderr);
        Assert.Equal(before, File.ReadAllBytes(inputs));

        var model = ModelWithConfig(File.ReadAllText(FixturePaths.Config));
        r = InProcessCli.Run("forward", "--model", model, "--inputs", CaseA, "--out", Path.Combine(model, "model.safetensors"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is a file of the model", r.Stderr);

        // What kill -9 during a write leaves: a temp file of a process that no longer exists.
        var stale = _dir.File("out.safetensors.tmp-2147483646-deadbeef");
        File.WriteAllBytes(stale, new byte[1 << 20]);
        r = Forward(FixturePaths.Root);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(File.Exists(stale), "the next write to the same place removes a dead writer's temp file");
    }

    [Fact]
    public void ALiteralImagePadInATrainingSampleIsRefused()
    {
        var data = _dir.File("data.jsonl");
        File.WriteAllText(data, "{\"messages\": [{\"role\": \"user\", \"content\": \"what is <|image_pad|>?\"}, {\"role\": \"assistant\", \"content\": \"red\"}]}\n");
        var outDir = _dir.File("run");
        var r = InProcessCli.Run("train", "--config", "shapes", "--data", data, "--out", outDir, "--steps", "1", "--batch", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("holds the special token <|image_pad|>", r.Stderr);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void InvalidUtf8InATokenizerOrAHeaderIsAOneLineError()
    {
        var tokenizer = _dir.File("tokenizer.json");
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "shapes-model", "tokenizer.json"));
        int quote = Array.IndexOf(bytes, (byte)'"', 20);
        bytes[quote + 1] = 0xFF;
        File.WriteAllBytes(tokenizer, bytes);
        var r = InProcessCli.Run("tokenize", "--tokenizer", tokenizer, "--text", "hi");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);

        var inputs = _dir.File("inputs.safetensors");
        var file = File.ReadAllBytes(CaseA);
        int name = file.AsSpan().IndexOf("input_ids"u8);
        file[name] = 0xFF;
        File.WriteAllBytes(inputs, file);
        r = InProcessCli.Run("forward", "--model", FixturePaths.Root, "--inputs", inputs, "--out", _dir.File("out.safetensors"));
        AssertRefused(r, "inputs.safetensors: ");
    }
}
