using System.Text.Json;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training;

/// <summary>
/// A freshly initialised Qwen2-VL checkpoint for a config, as transformers initialises one (spec §1: normal with
/// std initializer_range for linear and embedding weights, zero biases, unit norm weights), for training from scratch.
/// </summary>
public static class ModelInit
{
    public static void Write(string dir, string configJson, int seed)
    {
        // Validated as every model load validates (ConfigRules): the products below then fit in an int.
        var config = Compiled.CanonicalConfig.FromJson(configJson, "config.json");
        int h = config.GetInt("hidden_size"), inter = config.GetInt("intermediate_size"), layers = config.GetInt("num_hidden_layers");
        int heads = config.GetInt("num_attention_heads"), kv = config.GetInt("num_key_value_heads"), vocab = config.GetInt("vocab_size");
        int e = config.GetInt("vision_config.embed_dim"), depth = config.GetInt("vision_config.depth");
        int mlp = e * config.GetInt("vision_config.mlp_ratio", 4), merge = config.GetInt("vision_config.spatial_merge_size", 2);
        int channels = config.GetInt("vision_config.in_channels", 3), tp = config.GetInt("vision_config.temporal_patch_size", 2), p = config.GetInt("vision_config.patch_size", 14);
        double std = config.GetDouble("initializer_range", 0.02);
        int kvDim = kv * (h / heads), window = e * merge * merge;
        var rng = new Random(seed);
        var entries = new List<SafetensorsEntry>();
        void Add(string name, string init, params int[] shape)
        {
            var n = shape.Aggregate(1, (a, b) => a * b);
            var data = new float[n];
            for (int i = 0; i < n; i++)
                data[i] = init switch { "one" => 1f, "zero" => 0f, _ => (float)(Normal(rng) * std) };
            entries.Add(SafetensorsEntry.F32(name, data, shape.Select(d => (long)d).ToArray()));
        }
        Add("visual.patch_embed.proj.weight", "normal", e, channels, tp, p, p);
        for (int i = 0; i < depth; i++)
        {
            var b = $"visual.blocks.{i}.";
            Add(b + "norm1.weight", "one", e); Add(b + "norm1.bias", "zero", e);
            Add(b + "norm2.weight", "one", e); Add(b + "norm2.bias", "zero", e);
            Add(b + "attn.qkv.weight", "normal", 3 * e, e); Add(b + "attn.qkv.bias", "zero", 3 * e);
            Add(b + "attn.proj.weight", "normal", e, e); Add(b + "attn.proj.bias", "zero", e);
            Add(b + "mlp.fc1.weight", "normal", mlp, e); Add(b + "mlp.fc1.bias", "zero", mlp);
            Add(b + "mlp.fc2.weight", "normal", e, mlp); Add(b + "mlp.fc2.bias", "zero", e);
        }
        Add("visual.merger.ln_q.weight", "one", e); Add("visual.merger.ln_q.bias", "zero", e);
        Add("visual.merger.mlp.0.weight", "normal", window, window); Add("visual.merger.mlp.0.bias", "zero", window);
        Add("visual.merger.mlp.2.weight", "normal", h, window); Add("visual.merger.mlp.2.bias", "zero", h);
        Add("model.embed_tokens.weight", "normal", vocab, h);
        for (int i = 0; i < layers; i++)
        {
            var l = $"model.layers.{i}.";
            Add(l + "input_layernorm.weight", "one", h); Add(l + "post_attention_layernorm.weight", "one", h);
            Add(l + "self_attn.q_proj.weight", "normal", h, h); Add(l + "self_attn.q_proj.bias", "zero", h);
            Add(l + "self_attn.k_proj.weight", "normal", kvDim, h); Add(l + "self_attn.k_proj.bias", "zero", kvDim);
            Add(l + "self_attn.v_proj.weight", "normal", kvDim, h); Add(l + "self_attn.v_proj.bias", "zero", kvDim);
            Add(l + "self_attn.o_proj.weight", "normal", h, h);
            Add(l + "mlp.gate_proj.weight", "normal", inter, h); Add(l + "mlp.up_proj.weight", "normal", inter, h);
            Add(l + "mlp.down_proj.weight", "normal", h, inter);
        }
        Add("model.norm.weight", "one", h);
        if (!config.GetBool("tie_word_embeddings", false))
            Add("lm_head.weight", "normal", vocab, h);
        Directory.CreateDirectory(dir);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(dir, "config.json"), configJson);
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
