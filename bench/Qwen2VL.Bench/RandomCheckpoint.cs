using Qwen2VL.Runtime;

namespace Qwen2VL.Bench;

/// <summary>
/// Writes a Qwen2-VL checkpoint with random bf16 weights for a given config (spec §2 names and shapes), one shard per
/// layer plus <c>model.safetensors.index.json</c>, so a 2B-sized model never sits in memory twice while being written.
/// </summary>
internal static class RandomCheckpoint
{
    public static void Write(string dir, Qwen2VLDims d, int seed)
    {
        Directory.CreateDirectory(dir);
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var rng = new Random(seed);
        void Shard(string file, params (string Name, long[] Shape, bool Ones)[] tensors)
        {
            var entries = tensors.Select(t => SafetensorsEntry.BF16(t.Name, Fill(t.Shape, t.Ones, rng), t.Shape)).ToList();
            SafetensorsWriter.Write(Path.Combine(dir, file), entries);
            foreach (var t in tensors) map[t.Name] = file;
        }

        long e = d.VisionEmbed, m = d.VisionEmbed * 4, w = d.VisionEmbed * 4, h = d.Hidden, kv = d.KvHeads * (d.Hidden / d.Heads);
        Shard("visual-embed.safetensors", ("visual.patch_embed.proj.weight", [e, 3, 2, 14, 14], false));
        for (var i = 0; i < d.VisionDepth; i++)
        {
            var p = $"visual.blocks.{i}.";
            Shard($"visual-{i}.safetensors",
                (p + "norm1.weight", [e], true), (p + "norm1.bias", [e], false), (p + "norm2.weight", [e], true), (p + "norm2.bias", [e], false),
                (p + "attn.qkv.weight", [3 * e, e], false), (p + "attn.qkv.bias", [3 * e], false),
                (p + "attn.proj.weight", [e, e], false), (p + "attn.proj.bias", [e], false),
                (p + "mlp.fc1.weight", [m, e], false), (p + "mlp.fc1.bias", [m], false),
                (p + "mlp.fc2.weight", [e, m], false), (p + "mlp.fc2.bias", [e], false));
        }
        Shard("visual-merger.safetensors",
            ("visual.merger.ln_q.weight", [e], true), ("visual.merger.ln_q.bias", [e], false),
            ("visual.merger.mlp.0.weight", [w, w], false), ("visual.merger.mlp.0.bias", [w], false),
            ("visual.merger.mlp.2.weight", [h, w], false), ("visual.merger.mlp.2.bias", [h], false));
        Shard("embed.safetensors", ("model.embed_tokens.weight", [d.Vocab, h], false), ("model.norm.weight", [h], true));
        for (var i = 0; i < d.Layers; i++)
        {
            var p = $"model.layers.{i}.";
            Shard($"layer-{i}.safetensors",
                (p + "input_layernorm.weight", [h], true), (p + "post_attention_layernorm.weight", [h], true),
                (p + "self_attn.q_proj.weight", [h, h], false), (p + "self_attn.q_proj.bias", [h], false),
                (p + "self_attn.k_proj.weight", [kv, h], false), (p + "self_attn.k_proj.bias", [kv], false),
                (p + "self_attn.v_proj.weight", [kv, h], false), (p + "self_attn.v_proj.bias", [kv], false),
                (p + "self_attn.o_proj.weight", [h, h], false),
                (p + "mlp.gate_proj.weight", [d.Intermediate, h], false), (p + "mlp.up_proj.weight", [d.Intermediate, h], false),
                (p + "mlp.down_proj.weight", [h, d.Intermediate], false));
        }
        var index = "{\n  \"metadata\": {},\n  \"weight_map\": {\n" +
            string.Join(",\n", map.Select(kv => $"    \"{kv.Key}\": \"{kv.Value}\"")) + "\n  }\n}\n";
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index);
        File.WriteAllText(Path.Combine(dir, "config.json"), d.ConfigJson());
    }

    private static float[] Fill(long[] shape, bool ones, Random rng)
    {
        var n = shape.Aggregate(1L, (a, b) => a * b);
        var data = new float[n];
        if (ones)
        {
            Array.Fill(data, 1f);
            return data;
        }
        var scale = 1f / MathF.Sqrt(shape[^1]); // keeps activations O(1) through the layers
        for (long i = 0; i < n; i++)
            data[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return data;
    }
}

/// <summary>The dimensions a benchmark model is built with (spec §1).</summary>
internal sealed record Qwen2VLDims(int Hidden, int Intermediate, int Layers, int Heads, int KvHeads, int Vocab, int VisionDepth, int VisionEmbed)
{
    public static readonly Qwen2VLDims Qwen2VL2B = new(1536, 8960, 28, 12, 2, 151936, 32, 1280);

    public string ConfigJson() => $$"""
        {
          "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
          "hidden_size": {{Hidden}}, "intermediate_size": {{Intermediate}}, "num_hidden_layers": {{Layers}},
          "num_attention_heads": {{Heads}}, "num_key_value_heads": {{KvHeads}}, "vocab_size": {{Vocab}},
          "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
          "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
          "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
          "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656,
          "vision_config": {"depth": {{VisionDepth}}, "embed_dim": {{VisionEmbed}}, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
            "hidden_size": {{Hidden}}, "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2}
        }
        """;
}
