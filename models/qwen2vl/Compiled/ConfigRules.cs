using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The checks transformers' <c>Qwen2VLConfig</c> and the model's constructors make, applied to the flat config
/// before anything is built: counts positive, widths divisible by their head counts, the M-RoPE sections summing to
/// half a head, the vision head even in both rotary axes. A config that breaks one would, in transformers, fail to
/// load; here it would run and silently give other logits, so it is refused with the key that is wrong.
/// </summary>
public static class ConfigRules
{
    public static void Check(ModelConfig config, string source)
    {
        int Positive(string key, int? fallback = null)
        {
            int value = fallback is { } f ? config.GetInt(key, f) : config.GetInt(key);
            if (value < 1) throw new ConfigException($"{source}: {key} = {value} must be at least 1");
            return value;
        }
        void Divides(string what, int whole, string wholeKey, int part, string partKey)
        {
            if (whole % part != 0)
                throw new ConfigException($"{source}: {wholeKey} = {whole} is not divisible by {partKey} = {part} ({what})");
        }

        int hidden = Positive("hidden_size"), heads = Positive("num_attention_heads");
        int kvHeads = Positive("num_key_value_heads", heads);
        Positive("intermediate_size");
        Positive("num_hidden_layers");
        Positive("vocab_size");
        if (config.Has("max_position_embeddings")) Positive("max_position_embeddings");
        Divides("each attention head gets hidden_size / num_attention_heads values", hidden, "hidden_size", heads, "num_attention_heads");
        Divides("grouped-query attention shares each key/value head among a whole number of query heads", heads, "num_attention_heads", kvHeads, "num_key_value_heads");
        int headDim = hidden / heads;
        if (headDim % 2 != 0)
            throw new ConfigException($"{source}: the head size hidden_size / num_attention_heads = {headDim} must be even (rotary pairs)");
        if (config.Has("rope_scaling.mrope_section"))
        {
            int[] sections = config.GetIntArray("rope_scaling.mrope_section");
            if (sections.Length != 3 || sections.Any(s => s < 0) || sections.Sum() != headDim / 2)
                throw new ConfigException($"{source}: rope_scaling.mrope_section = [{string.Join(", ", sections)}] must be three non-negative numbers " +
                                          $"summing to half the head size ({headDim / 2})");
        }

        int embed = Positive("vision_config.embed_dim"), visionHeads = Positive("vision_config.num_heads");
        Positive("vision_config.depth");
        Positive("vision_config.mlp_ratio", 4);
        Positive("vision_config.patch_size", 14);
        Positive("vision_config.temporal_patch_size", 2);
        Positive("vision_config.spatial_merge_size", 2);
        Positive("vision_config.in_channels", 3);
        Divides("each vision head gets embed_dim / num_heads values", embed, "vision_config.embed_dim", visionHeads, "vision_config.num_heads");
        if (embed / visionHeads % 4 != 0)
            throw new ConfigException($"{source}: the vision head size embed_dim / num_heads = {embed / visionHeads} must be a multiple of 4 (rotary pairs along rows and columns)");
        if (config.Has("vision_config.hidden_size") && config.GetInt("vision_config.hidden_size") != hidden)
            throw new ConfigException($"{source}: vision_config.hidden_size = {config.GetInt("vision_config.hidden_size")} must equal hidden_size = {hidden} (the merger feeds the decoder)");
        // Sizes the runtime multiplies (embedding tables, MLPs) must fit in one buffer.
        CheckedSize.ArrayLength($"{source}: vocab_size × hidden_size", config.GetInt("vocab_size"), hidden);
        CheckedSize.ArrayLength($"{source}: intermediate_size × hidden_size", config.GetInt("intermediate_size"), hidden);
        CheckedSize.ArrayLength($"{source}: vision mlp", (long)embed * config.GetInt("vision_config.mlp_ratio", 4), embed);
    }
}
