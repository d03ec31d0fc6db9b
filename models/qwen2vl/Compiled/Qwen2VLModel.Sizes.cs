using Qwen2VL.Model.Decoder;
using Qwen2VL.Model.Vision;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// Binds <paramref name="config"/> at <paramref name="batch"/> × <paramref name="seq"/> tokens, with
    /// <paramref name="visionPatches"/> patches of <paramref name="visionItems"/> images or videos, without weights or a
    /// device: runs the size checks every generated runner makes before it runs (each value must fit a device buffer,
    /// at most 2^31 − 1 elements; the products are formed in 64 bits), for the modules a forward, a generation step
    /// and a training step use. <paramref name="fullLogits"/>: also the [B·S, Vocab] logits of <see cref="Forward"/>
    /// (generation and the chunked training loss need only [B, Vocab] and one vocabulary chunk). Throws the
    /// <see cref="ModelException"/> naming the first value that does not fit, its dims and their values.
    /// </summary>
    public static void CheckSizes(ModelConfig config, int batch, int seq, int visionPatches = 0, int visionItems = 0, bool fullLogits = false)
    {
        if (visionPatches > 0)
        {
            VisionTower.Runner.CheckSizes(config, visionPatches, visionItems + 1);
            VisionBlock.Runner.CheckSizes(config, visionPatches, visionItems + 1);
            PatchMerger.Runner.CheckSizes(config, visionPatches);
        }
        TokenEmbedding.Runner.CheckSizes(config, batch, seq);
        DecoderLayer.Runner.CheckSizes(config, batch, seq);
        FinalNorm.Runner.CheckSizes(config, batch, seq);
        LmHead.Runner.CheckSizes(config, batch);
        if (fullLogits)
            LmHead.Runner.CheckSizes(config, checked(batch * seq));
    }
}
