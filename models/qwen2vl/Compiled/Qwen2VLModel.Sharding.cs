using Qwen2VL.Model.Decoder;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// The bind-time check of the model's shard plan (the <c>Shard</c> of each [Param]) for tensor-parallel degree
    /// <paramref name="degree"/> under <paramref name="config"/>: every module's generated <c>CheckTensorParallel</c>
    /// under its checkpoint prefix. Throws a one-line <see cref="ModelException"/> naming the dim, its config key, its
    /// size, the degree and the tensor. No weights are needed. (Only the plan is checked: tensor-parallel execution
    /// does not exist yet.)
    /// </summary>
    public static void CheckTensorParallel(ModelConfig config, int degree)
    {
        TokenEmbedding.CheckTensorParallel(config, degree, "model.embed_tokens.");
        VisionTower.CheckTensorParallel(config, degree, "visual.");
        int layers = config.GetInt("num_hidden_layers");
        for (int i = 0; i < layers; i++)
            DecoderLayer.CheckTensorParallel(config, degree, $"model.layers.{i}.");
        LmHead.CheckTensorParallel(config, degree, config.GetBool("tie_word_embeddings", false) ? "model.embed_tokens." : "lm_head.");
    }
}
