namespace Qwen2VL.Runtime.Aot;

/// <summary>
/// The configs <c>qwen2vl compile --config NAME</c> knows without a checkpoint folder. <c>tiny</c> is a verbatim copy
/// of tests/fixtures/qwen2vl-tiny/config.json (a test keeps them equal); <c>2b</c>, <c>7b</c>, <c>72b</c> are the
/// legacy-layout config.json of Qwen2-VL-{2B,7B,72B}-Instruct as given in the model spec §1.1–1.2 (spec values; the
/// official files were not copied).
/// </summary>
public static class BuiltInConfigs
{
    private static readonly Dictionary<string, string> Json = new(StringComparer.Ordinal)
    {
        ["tiny"] = """
{
  "architectures": [
    "Qwen2VLForConditionalGeneration"
  ],
  "attention_dropout": 0.0,
  "bos_token_id": 506,
  "eos_token_id": 504,
  "hidden_act": "silu",
  "hidden_size": 64,
  "image_token_id": 502,
  "initializer_range": 0.02,
  "intermediate_size": 128,
  "max_position_embeddings": 4096,
  "max_window_layers": 2,
  "model_type": "qwen2_vl",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "num_key_value_heads": 2,
  "pad_token_id": 505,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "mrope_section": [
      2,
      3,
      3
    ],
    "type": "mrope"
  },
  "rope_theta": 1000000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "video_token_id": 503,
  "vision_config": {
    "depth": 2,
    "embed_dim": 32,
    "hidden_act": "quick_gelu",
    "hidden_size": 64,
    "in_channels": 3,
    "in_chans": 3,
    "mlp_ratio": 4,
    "num_heads": 2,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "spatial_patch_size": 14,
    "temporal_patch_size": 2
  },
  "vision_end_token_id": 501,
  "vision_start_token_id": 500,
  "vision_token_id": 507,
  "vocab_size": 512
}
""",
        ["2b"] = """
{
  "architectures": [
    "Qwen2VLForConditionalGeneration"
  ],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 1536,
  "image_token_id": 151655,
  "initializer_range": 0.02,
  "intermediate_size": 8960,
  "max_position_embeddings": 32768,
  "max_window_layers": 28,
  "model_type": "qwen2_vl",
  "num_attention_heads": 12,
  "num_hidden_layers": 28,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "mrope_section": [
      16,
      24,
      24
    ],
    "type": "mrope"
  },
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "video_token_id": 151656,
  "vision_config": {
    "depth": 32,
    "embed_dim": 1280,
    "hidden_size": 1536,
    "in_chans": 3,
    "mlp_ratio": 4,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "spatial_patch_size": 14,
    "temporal_patch_size": 2
  },
  "vision_end_token_id": 151653,
  "vision_start_token_id": 151652,
  "vision_token_id": 151654,
  "vocab_size": 151936
}
""",
        ["7b"] = """
{
  "architectures": [
    "Qwen2VLForConditionalGeneration"
  ],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "image_token_id": 151655,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 32768,
  "max_window_layers": 28,
  "model_type": "qwen2_vl",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "mrope_section": [
      16,
      24,
      24
    ],
    "type": "mrope"
  },
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "video_token_id": 151656,
  "vision_config": {
    "depth": 32,
    "embed_dim": 1280,
    "hidden_size": 3584,
    "in_chans": 3,
    "mlp_ratio": 4,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "spatial_patch_size": 14,
    "temporal_patch_size": 2
  },
  "vision_end_token_id": 151653,
  "vision_start_token_id": 151652,
  "vision_token_id": 151654,
  "vocab_size": 152064
}
""",
        ["72b"] = """
{
  "architectures": [
    "Qwen2VLForConditionalGeneration"
  ],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 8192,
  "image_token_id": 151655,
  "initializer_range": 0.02,
  "intermediate_size": 29568,
  "max_position_embeddings": 32768,
  "max_window_layers": 80,
  "model_type": "qwen2_vl",
  "num_attention_heads": 64,
  "num_hidden_layers": 80,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "mrope_section": [
      16,
      24,
      24
    ],
    "type": "mrope"
  },
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "video_token_id": 151656,
  "vision_config": {
    "depth": 32,
    "embed_dim": 1280,
    "hidden_size": 8192,
    "in_chans": 3,
    "mlp_ratio": 4,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "spatial_patch_size": 14,
    "temporal_patch_size": 2
  },
  "vision_end_token_id": 151653,
  "vision_start_token_id": 151652,
  "vision_token_id": 151654,
  "vocab_size": 152064
}
""",
    };

    /// <summary>The names accepted by <see cref="Get"/>, in a fixed order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["tiny", "2b", "7b", "72b"];

    /// <summary>The config.json text (LF newlines) of a built-in config.</summary>
    public static string Get(string name) =>
        Json.TryGetValue(name, out var json)
            ? json.ReplaceLineEndings("\n")
            : throw new AotException($"unknown config '{name}': built-in configs are {string.Join(", ", Names)}");
}
