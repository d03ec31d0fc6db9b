using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Decoder;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Distributed;

/// <summary>
/// The model's shard plan (<c>[Param(…, Shard = …)]</c>) and its bind-time check against the released configs: the
/// degrees that divide every split pass; one that does not is a one-line error naming the dim, its config key, its
/// size, the degree and the first tensor it breaks. (The plan only: tensor-parallel execution does not exist yet.)
/// </summary>
public sealed class ShardPlanTests
{
    private static ModelConfig Config(string name) => CanonicalConfig.FromJson(BuiltInConfigs.Get(name), name);

    [Theory]
    [InlineData("tiny", 2)]
    [InlineData("2b", 2)]
    [InlineData("7b", 4)]
    [InlineData("72b", 8)]
    public void DegreesThatDivideEverySplitPass(string config, int degree) =>
        Qwen2VLModel.CheckTensorParallel(Config(config), degree);

    [Theory]
    [InlineData("2b", 4, "tensor-parallel degree 4 does not divide KvHeads (num_key_value_heads) = 2 (model.layers.0.self_attn.k_proj.weight is column-parallel)")]
    [InlineData("7b", 8, "tensor-parallel degree 8 does not divide Heads (num_attention_heads) = 28 (model.layers.0.self_attn.q_proj.weight is column-parallel)")]
    [InlineData("tiny", 3, "tensor-parallel degree 3 does not divide Vocab (vocab_size) = 512 (model.embed_tokens.weight is vocab-parallel)")]
    [InlineData("tiny", 4, "tensor-parallel degree 4 does not divide Heads (vision_config.num_heads) = 2 (visual.blocks.0.attn.qkv.weight is column-parallel)")]
    public void ADegreeThatDoesNotDivideNamesTheDimAndTheDegree(string config, int degree, string message)
    {
        var e = Assert.Throws<ModelException>(() => Qwen2VLModel.CheckTensorParallel(Config(config), degree));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void ThePlanIsTheIssuesLayout()
    {
        string Kind(IEnumerable<(string Name, string Shard, int Axis, string Groups)> plan, string name) =>
            plan.SingleOrDefault(p => p.Name == name).Shard ?? "Replicated";
        foreach (var name in new[] { "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight" })
            Assert.Equal("Column", Kind(DecoderLayer.ShardPlan, name));
        foreach (var name in new[] { "self_attn.o_proj.weight", "mlp.down_proj.weight" })
            Assert.Equal("Row", Kind(DecoderLayer.ShardPlan, name));
        Assert.Equal("KvHeads", DecoderLayer.ShardPlan.Single(p => p.Name == "self_attn.k_proj.weight").Groups); // whole KV groups
        Assert.Equal("Replicated", Kind(DecoderLayer.ShardPlan, "input_layernorm.weight"));
        foreach (var name in new[] { "attn.qkv.weight", "mlp.fc1.weight" })
            Assert.Equal("Column", Kind(VisionBlock.ShardPlan, name));
        foreach (var name in new[] { "attn.proj.weight", "mlp.fc2.weight" })
            Assert.Equal("Row", Kind(VisionBlock.ShardPlan, name));
        Assert.Equal("Vocab", Kind(TokenEmbedding.ShardPlan, "weight"));
        Assert.Equal("Vocab", Kind(LmHead.ShardPlan, "weight"));
    }

    [Fact]
    public void ADegreeBelowOneIsRefused() =>
        Assert.Contains("must be 1 or more, got 0", Assert.Throws<ModelException>(() => Qwen2VLModel.CheckTensorParallel(Config("2b"), 0)).Message);
}
