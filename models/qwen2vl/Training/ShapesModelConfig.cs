namespace Qwen2VL.Model.Training;

/// <summary>
/// The small Qwen2-VL-architecture model trained from scratch on the synthetic shapes set (the embedded default
/// model): every piece of the real architecture (ViT with 2-D RoPE, 2×2 merger, GQA decoder with M-RoPE), tiny sizes.
/// Token ids follow the shapes tokenizer: 368 BPE tokens, then the 8 special tokens.
/// </summary>
public static class ShapesModelConfig
{
    public const string Json = """
        {
          "architectures": ["Qwen2VLForConditionalGeneration"],
          "model_type": "qwen2_vl",
          "hidden_size": 96,
          "intermediate_size": 256,
          "num_hidden_layers": 2,
          "num_attention_heads": 4,
          "num_key_value_heads": 2,
          "vocab_size": 376,
          "rms_norm_eps": 1e-06,
          "rope_theta": 1000000.0,
          "rope_scaling": {"type": "mrope", "mrope_section": [4, 4, 4]},
          "tie_word_embeddings": true,
          "initializer_range": 0.02,
          "vision_start_token_id": 368,
          "vision_end_token_id": 369,
          "image_token_id": 370,
          "video_token_id": 371,
          "eos_token_id": 372,
          "pad_token_id": 373,
          "bos_token_id": 373,
          "vision_token_id": 375,
          "vision_config": {
            "depth": 3, "embed_dim": 96, "num_heads": 4, "mlp_ratio": 4, "in_channels": 3, "in_chans": 3,
            "hidden_size": 96, "patch_size": 14, "spatial_patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2
          }
        }
        """;
}
