using System.Text.Json;
using Qwen2VL.Model.Text;
using Xunit;

namespace Qwen2VL.Tests.Text;

[Collection(RealTokenizerCollection.Name)]
public sealed class ChatTemplateTests(Qwen2TokenizerFixture fixture)
{
    [Fact]
    public void Render_SpecExample_IsByteExact()
    {
        var prompt = ChatTemplate.Render(
            [new ChatMessage("user", [ChatContent.Image(), ChatContent.Text("Describe this image.")])],
            addGenerationPrompt: true);
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n",
            prompt);
    }

    private sealed record Case(string Name, JsonElement Messages, bool AddGenerationPrompt, bool AddVisionId, string Expected);

    private sealed record CaseFile(Case[] Cases);

    /// <summary>HF message form → ours: string content is one text item; items are {"type": "text" | "image" | "video"}.</summary>
    private static ChatMessage ToMessage(JsonElement m)
    {
        var role = m.GetProperty("role").GetString()!;
        var content = m.GetProperty("content");
        if (content.ValueKind == JsonValueKind.String) return ChatMessage.FromText(role, content.GetString()!);
        var items = content.EnumerateArray().Select(item => item.GetProperty("type").GetString() switch
        {
            "text" => ChatContent.Text(item.GetProperty("text").GetString()!),
            "image" => ChatContent.Image(),
            "video" => ChatContent.Video(),
            var other => throw new InvalidDataException($"content type {other}"),
        }).ToList();
        return new ChatMessage(role, items);
    }

    /// <summary>36 renders of the real template by jinja2 (tests/tokenizer/tools/make_chat_template_cases.py).</summary>
    [Fact]
    public void Render_MatchesTheJinjaTemplateOnEveryCase()
    {
        var file = JsonSerializer.Deserialize<CaseFile>(
            File.ReadAllText(Path.Combine(TokenizerTestData.RepoRoot, "tests", "tokenizer", "chat_template_cases.json")),
            new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;
        Assert.Equal(36, file.Cases.Length);
        foreach (var c in file.Cases)
        {
            var messages = c.Messages.EnumerateArray().Select(ToMessage).ToList();
            var rendered = ChatTemplate.Render(messages, c.AddGenerationPrompt, c.AddVisionId);
            Assert.True(c.Expected == rendered,
                $"{c.Name} (generation prompt {c.AddGenerationPrompt}, vision id {c.AddVisionId}):\nexpected {JsonSerializer.Serialize(c.Expected)}\ngot      {JsonSerializer.Serialize(rendered)}");
        }
    }

    [Fact]
    public void Render_ThenEncode_GivesTheWellKnownChatIds()
    {
        // tests/tokenizer/qwen2-vl/README.md: the default system turn and an image slot.
        var prompt = ChatTemplate.Render([new ChatMessage("user", [ChatContent.Image()])]);
        var ids = fixture.Tokenizer.Encode(prompt);
        Assert.Equal([151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198], ids.Take(11));
        Assert.Equal([151652, 151655, 151653], ids.Skip(14).Take(3));
    }
}

[Collection(RealTokenizerCollection.Name)]
public sealed class VisionPlaceholdersTests(Qwen2TokenizerFixture fixture)
{
    private const string Slot = "<|vision_start|><|image_pad|><|vision_end|>";
    private const string VideoSlot = "<|vision_start|><|video_pad|><|vision_end|>";

    private static int Count(string s, string token) => (s.Length - s.Replace(token, "").Length) / token.Length;

    [Fact]
    public void Expand_GivesEachSlotItsGridsMergedPatchCount()
    {
        var prompt = $"a{Slot}b{VideoSlot}c{Slot}d";
        var expanded = VisionPlaceholders.Expand(prompt, [(1, 4, 6), (1, 2, 2)], [(2, 4, 4)]);
        var first = string.Concat(Enumerable.Repeat("<|image_pad|>", 6));   // 1·4·6/4
        var video = string.Concat(Enumerable.Repeat("<|video_pad|>", 8));   // 2·4·4/4
        Assert.Equal($"a<|vision_start|>{first}<|vision_end|>b<|vision_start|>{video}<|vision_end|>c{Slot}d", expanded);
    }

    [Fact]
    public void Expand_UsesTheMergeSize()
    {
        var expanded = VisionPlaceholders.Expand(Slot, [(1, 6, 9)], [], mergeSize: 3);
        Assert.Equal(6, Count(expanded, "<|image_pad|>"));
        Assert.Equal(54, Count(VisionPlaceholders.Expand(Slot, [(1, 6, 9)], [], mergeSize: 1), "<|image_pad|>"));
    }

    [Fact]
    public void Expand_ThenEncode_HasOnePadIdPerMergedPatch()
    {
        var prompt = ChatTemplate.Render([new ChatMessage("user", [ChatContent.Image(), ChatContent.Text("What is this?")])], addGenerationPrompt: true);
        var ids = fixture.Tokenizer.Encode(VisionPlaceholders.Expand(prompt, [(1, 36, 50)], []));
        Assert.Equal(450, ids.Count(id => id == 151655));
        Assert.Single(ids, id => id == 151652);
    }

    [Fact]
    public void Expand_WrongPlaceholderCount_NamesBothCounts()
    {
        var e = Assert.Throws<TokenizerException>(() => VisionPlaceholders.Expand(Slot + Slot, [(1, 2, 2)], []));
        Assert.Contains("2 <|image_pad|> placeholders", e.Message);
        Assert.Contains("1 image grids", e.Message);
        e = Assert.Throws<TokenizerException>(() => VisionPlaceholders.Expand(Slot, [(1, 2, 2)], [(1, 2, 2)]));
        Assert.Contains("0 <|video_pad|> placeholders but 1 video grids", e.Message);
    }

    [Fact]
    public void Expand_GridNotDivisibleByMerge_IsRejected()
    {
        var e = Assert.Throws<TokenizerException>(() => VisionPlaceholders.Expand(Slot, [(1, 3, 4)], []));
        Assert.Contains("h=3", e.Message);
    }
}
