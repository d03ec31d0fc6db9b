namespace Qwen2VL.Model.Training;

/// <summary>
/// The small Qwen2-VL-architecture model trained from scratch on the synthetic shapes set (the embedded default
/// model): every piece of the real architecture (ViT with 2-D RoPE, 2×2 merger, GQA decoder with M-RoPE), tiny sizes.
/// Token ids follow the shapes tokenizer: 368 BPE tokens, then the 8 special tokens.
/// <para>
/// <c>rope_theta</c> is 10, not the released models' 1e6. With head dim 24 and sections [4, 4, 4] the decoder's
/// M-RoPE frequencies are θ^(−i/12), i = 0…11, and height takes i = 4…7, width i = 8…11: with θ = 1e6 those rotate by
/// 1e-2…1e-6 radians per grid step, so image tokens a few patches apart look the same and position questions stay
/// near chance (58 % in the first shipped model). With θ = 10 they rotate by 0.46…0.12 radians per step.
/// </para>
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
          "rope_theta": 10.0,
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
