using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public class ModelConfigTests
{
    private const string Json = """
    {
      "hidden_size": 64,
      "rms_norm_eps": 1e-06,
      "as_float": 4.0,
      "fraction": 4.5,
      "sliding_window": null,
      "model_type": "qwen2_vl",
      "tie_word_embeddings": false,
      "rope_scaling": { "mrope_section": [2, 3, 3], "type": "mrope" },
      "vision_config": { "depth": 2 }
    }
    """;

    private static readonly ModelConfig Config = ModelConfig.Parse(Json, "config.json");

    [Fact]
    public void ReadsTypedValuesByDottedPath()
    {
        Assert.Equal(64, Config.GetInt("hidden_size"));
        Assert.Equal(2, Config.GetInt("vision_config.depth"));
        Assert.Equal(4, Config.GetInt("as_float"));
        Assert.Equal(1e-6, Config.GetDouble("rms_norm_eps"));
        Assert.Equal("qwen2_vl", Config.GetString("model_type"));
        Assert.False(Config.GetBool("tie_word_embeddings", true));
        Assert.Equal([2, 3, 3], Config.GetIntArray("rope_scaling.mrope_section"));
        Assert.Equal(3, Config.GetInt("rope_scaling.mrope_section.1"));
        Assert.True(Config.Has("vision_config.depth"));
        Assert.False(Config.Has("vision_config.embed_dim"));
        Assert.False(Config.Has("sliding_window")); // null counts as absent
        Assert.Equal(7, Config.GetInt("sliding_window", 7));
        Assert.Equal(0.5, Config.GetDouble("missing", 0.5));
        Assert.Equal("x", Config.GetString("missing", "x"));
    }

    [Fact]
    public void MissingKeyNamesFileAndKey()
    {
        var e = Assert.Throws<ConfigException>(() => Config.GetInt("vision_config.embed_dim"));
        Assert.Equal("config.json: missing key 'vision_config.embed_dim'", e.Message);
    }

    [Fact]
    public void NonIntegerNamesKeyAndValue()
    {
        Assert.Equal("config.json: key 'fraction' must be an integer, got 4.5",
            Assert.Throws<ConfigException>(() => Config.GetInt("fraction")).Message);
        Assert.Equal("config.json: key 'model_type' must be an integer, got \"qwen2_vl\"",
            Assert.Throws<ConfigException>(() => Config.GetInt("model_type", 1)).Message);
        Assert.Equal("config.json: key 'hidden_size' must be a string, got 64",
            Assert.Throws<ConfigException>(() => Config.GetString("hidden_size")).Message);
    }

    [Fact]
    public void BadJsonNamesFileAndLine()
    {
        var e = Assert.Throws<ConfigException>(() => ModelConfig.Parse("{\n  \"a\": 1,\n  \"b\": ?\n}", "my.json"));
        Assert.StartsWith("my.json: invalid JSON at line 3", e.Message);
    }

    [Fact]
    public void LoadsTheFixtureConfig()
    {
        ModelConfig config = ModelConfig.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "config.json"));
        Assert.Equal(32, config.GetInt("vision_config.embed_dim"));
        Assert.Equal(4, config.GetInt("num_attention_heads"));
        Assert.Equal(1e6, config.GetDouble("rope_theta"));
        var missing = Assert.Throws<ConfigException>(() => ModelConfig.Load("/nonexistent/dir/config.json"));
        Assert.StartsWith("config.json: file not found", missing.Message);
    }
}
