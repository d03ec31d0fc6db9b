using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Serving;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;
using Qwen2VL.Server;
using Qwen2VL.Tests.Runtime;
using Qwen2VL.Tests.Text;
using Xunit;

namespace Qwen2VL.Tests.Cli;

/// <summary>
/// A checkpoint laid out as Qwen2-VL-2B-Instruct is released (bf16 weights in two shards with
/// model.safetensors.index.json and the new tensor names, generation_config.json, the released chat_template.json and
/// tokenizer_config.json, tokenizer.json, preprocessor_config.json), made from the embedded tiny model, through
/// <c>generate</c>, <c>chat</c> and <c>serve</c> (over HTTP, with the OpenAI client). Its generation_config is the released one's shape (do_sample with top_k 1, a tiny
/// top_p and temperature, a repetition penalty), so transformers' <c>generate</c> picks, at each step, the argmax of
/// the logits after the CTRL penalty on every id already in the sequence; the test computes that by hand from full
/// forward passes (no cache, no sampler) and expects exactly those tokens.
/// </summary>
public sealed class ReleasedCheckpointTests : IDisposable
{
    private const double Penalty = 1.8;
    private const int MaxNew = 12;
    private const string Prompt = "Describe <image> briefly.";
    private static string Tiny => Path.Combine(AppContext.BaseDirectory, "default-model");
    private static string ImagePath => Path.Combine(Tiny, "example", "image_0.png");

    private readonly TempDirectory _dir = new();
    private readonly Qwen2Tokenizer _tokenizer = Qwen2Tokenizer.Load(Path.Combine(Tiny, "tokenizer.json"));
    private readonly long[] _eos;

    public ReleasedCheckpointTests()
    {
        _eos = [_tokenizer.TokenToId("<|im_end|>")!.Value, _tokenizer.TokenToId("<|endoftext|>")!.Value];
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Tiny, "config.json")))!.AsObject();
        config["torch_dtype"] = "bfloat16";
        File.WriteAllText(_dir.File("config.json"), config.ToJsonString());
        using (var source = SafetensorsFile.Open(Path.Combine(Tiny, "model.safetensors")))
        {
            static string NewName(string n) =>
                n.StartsWith("visual.", StringComparison.Ordinal) ? "model." + n
                : n.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + n["model.".Length..]
                : n;
            var names = source.Tensors.Keys.Order(StringComparer.Ordinal).ToArray();
            var index = new JsonObject();
            for (int shard = 0; shard < 2; shard++)
            {
                string file = $"model-0000{shard + 1}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == shard).ToArray();
                SafetensorsWriter.Write(_dir.File(file), part.Select(n =>
                    SafetensorsEntry.BF16(NewName(n), source.ReadFloat32(n), source.Info(n).Shape)).ToList());
                foreach (var n in part) index[NewName(n)] = file;
            }
            File.WriteAllText(_dir.File("model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = index }.ToJsonString());
        }
        File.WriteAllText(_dir.File("generation_config.json"), new JsonObject
        {
            ["bos_token_id"] = _eos[1],
            ["pad_token_id"] = _eos[1],
            ["do_sample"] = true,
            ["eos_token_id"] = new JsonArray(_eos[0], _eos[1]),
            ["repetition_penalty"] = Penalty,
            ["temperature"] = 0.01,
            ["top_k"] = 1,
            ["top_p"] = 0.001,
            ["transformers_version"] = "4.45.0.dev0",
        }.ToJsonString());
        foreach (var file in new[] { "chat_template.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(TokenizerTestData.Qwen2VlDir, file), _dir.File(file));
        File.Copy(Path.Combine(Tiny, "tokenizer.json"), _dir.File("tokenizer.json"));
        File.Copy(Path.Combine(Tiny, "preprocessor_config.json"), _dir.File("preprocessor_config.json"));
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void GenerateAppliesTheGenerationConfigAsTransformersDoes()
    {
        var penalized = HandComputed(Penalty);
        var plain = HandComputed(1.0);
        Assert.NotEqual(plain, penalized);    // the penalty matters for this prompt, so the test can tell

        var r = CliRunner.Run("generate", "--model", _dir.Path, "--image", ImagePath, "--prompt", Prompt,
            "--max-new-tokens", MaxNew.ToString(), "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(Decode(penalized) + Environment.NewLine, r.Stdout);
        Assert.Contains("generation_config.json", r.Stderr);
        Assert.Contains("tokens/s", r.Stderr);

        // A flag overrides only its own setting: --repetition-penalty 1 leaves top_k 1, i.e. the plain argmax.
        var overridden = CliRunner.Run("generate", "--model", _dir.Path, "--image", ImagePath, "--prompt", Prompt,
            "--max-new-tokens", MaxNew.ToString(), "--device", "cpu", "--repetition-penalty", "1");
        Assert.True(overridden.ExitCode == 0, overridden.Stderr);
        Assert.Equal(Decode(plain) + Environment.NewLine, overridden.Stdout);
    }

    [Fact]
    public void ChatAnswersTwoTurnsFromPipedInput()
    {
        var r = CliRunner.RunWithInput($"/image {ImagePath}\n{Prompt}\n\nAnd the colours?\n/exit\nnot read\n",
            "chat", "--model", _dir.Path, "--max-new-tokens", MaxNew.ToString(), "--device", "cpu", "--system", "You describe pictures.");
        Assert.True(r.ExitCode == 0, r.Stderr);

        // The same two turns through ChatSession in-process, with the checkpoint's defaults resolved as the CLI does.
        using var model = Qwen2VLModel.Load(_dir.Path, DeviceKind.Cpu);
        var processor = ImageProcessor.Load(_dir.File("preprocessor_config.json"));
        var defaults = GenerationDefaults.Load(_dir.Path, model.EosTokenIds, model.PadTokenId);
        var options = new GenerationOptions(MaxNew, defaults.Resolve(SamplingOverrides.None), ChatInputs.StopIds(_tokenizer, defaults.EosTokenIds), defaults.PadTokenId);
        using var session = new ChatSession(model, _tokenizer, processor, 4096);
        session.Conversation.System = "You describe pictures.";
        session.Conversation.AddUser(Prompt, [RgbImage.Load(ImagePath)]);
        var first = session.Answer(options);
        session.Conversation.AddUser("And the colours?");
        var second = session.Answer(options);
        Assert.Equal(first.Text + Environment.NewLine + second.Text + Environment.NewLine, r.Stdout);
        Assert.Contains("image 1 attached", r.Stderr);
    }

    [Fact]
    public async Task ServeAnswersAsGenerateDoesOverHttp()
    {
        var generated = CliRunner.Run("generate", "--model", _dir.Path, "--image", ImagePath, "--prompt", Prompt,
            "--max-new-tokens", MaxNew.ToString(), "--device", "cpu");
        Assert.True(generated.ExitCode == 0, generated.Stderr);
        string expected = generated.Stdout.TrimEnd('\n', '\r');
        Assert.Equal(Decode(HandComputed(Penalty)), expected);

        // serve on the same folder, asked by the official OpenAI client with no sampling fields: the checkpoint's
        // generation_config.json applies (as vLLM does), so the answer is generate's, streamed and not, concurrently.
        using var engine = ChatEngine.Load(_dir.Path, DeviceKind.Cpu, new BatcherOptions(Slots: 4, Capacity: 1024, MaxQueue: 4));
        await using var server = await OpenAiServer.StartAsync(engine, new ServerOptions { Port = 0 });
        var client = new OpenAI.Chat.ChatClient(engine.ModelName, new ApiKeyCredential("unused"),
            new OpenAIClientOptions { Endpoint = new Uri(server.BaseUrl + "/v1") });
        var split = Prompt.Split("<image>");
        var question = new UserChatMessage(ChatMessageContentPart.CreateTextPart(split[0]),
            ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(File.ReadAllBytes(ImagePath)), "image/png"),
            ChatMessageContentPart.CreateTextPart(split[1]));
        var options = new ChatCompletionOptions { MaxOutputTokenCount = MaxNew };
        var whole = client.CompleteChatAsync([question], options);
        var streamed = Task.Run(async () =>
        {
            var text = new System.Text.StringBuilder();
            await foreach (var update in client.CompleteChatStreamingAsync([question], options))
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
            return text.ToString();
        });
        Assert.Equal(expected, (await whole.WaitAsync(TimeSpan.FromSeconds(60))).Value.Content[0].Text);
        Assert.Equal(expected, await streamed.WaitAsync(TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public void AnAnswerThatEndsAtOnceIsExplained()
    {
        // Make the model's first choice an eos id: the answer is empty, and stderr says why.
        var first = HandComputed(Penalty, maxNew: 1)[0];
        var config = JsonNode.Parse(File.ReadAllText(_dir.File("generation_config.json")))!.AsObject();
        config["eos_token_id"] = new JsonArray(first, _eos[0]);
        File.WriteAllText(_dir.File("generation_config.json"), config.ToJsonString());
        var r = CliRunner.Run("generate", "--model", _dir.Path, "--image", ImagePath, "--prompt", Prompt, "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(Environment.NewLine, r.Stdout);
        Assert.Contains("empty answer: the model's first token was an end-of-turn token", r.Stderr);
    }

    [Fact]
    public void AnotherChatTemplateIsRefusedInOneLine()
    {
        File.WriteAllText(_dir.File("chat_template.json"), "{\"chat_template\": \"{% for m in messages %}{{ m['content'] }}{% endfor %}\"}");
        var r = CliRunner.Run("generate", "--model", _dir.Path, "--prompt", "hi", "--device", "cpu");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("chat_template.json: the chat template is not Qwen2-VL's", r.Stderr);

        // serve refuses it too, before listening.
        var served = CliRunner.Run("serve", "--model", _dir.Path, "--port", "0", "--device", "cpu");
        Assert.Equal(2, served.ExitCode);
        Assert.Contains("chat_template.json: the chat template is not Qwen2-VL's", served.Stderr);
    }

    /// <summary>
    /// transformers' choice with do_sample, top_k 1 and the penalty θ: at each step the logits of the whole sequence
    /// so far (one full forward pass, no KV cache), z → z/θ if z &gt; 0 else z·θ for every id in the sequence, then the
    /// largest (first on ties); an eos id ends the answer.
    /// </summary>
    private List<long> HandComputed(double theta, int maxNew = MaxNew)
    {
        using var model = Qwen2VLModel.Load(_dir.Path, DeviceKind.Cpu);
        var processor = ImageProcessor.Load(_dir.File("preprocessor_config.json"));
        var prompt = ChatInputs.Build(_tokenizer, processor, [RgbImage.Load(ImagePath)], [], Prompt);
        var ids = prompt.InputIds.ToList();
        var answer = new List<long>();
        for (int step = 0; step < maxNew; step++)
        {
            var output = model.Forward(prompt with { InputIds = ids.ToArray(), Seq = ids.Count });
            var z = output.Logits.AsSpan((ids.Count - 1) * model.Vocab, model.Vocab).ToArray().Select(v => (double)v).ToArray();
            foreach (long id in ids.Distinct())
                z[id] = z[id] > 0 ? z[id] / theta : z[id] * theta;
            long best = 0;
            for (int i = 1; i < z.Length; i++)
                if (z[i] > z[best]) best = i;
            if (_eos.Contains(best)) break;
            answer.Add(best);
            ids.Add(best);
        }
        return answer;
    }

    private string Decode(IEnumerable<long> ids) => _tokenizer.Decode(ids.Select(id => (int)id), skipSpecialTokens: true);
}
