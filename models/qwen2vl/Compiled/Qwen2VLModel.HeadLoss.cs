using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Training;

namespace Qwen2VL.Model.Compiled;

partial class TokenEmbedding
{
    partial class Runner
    {
        /// <summary>The embedding table [Vocab, Hidden] (bf16 under <c>--dtype bf16</c>: gathered by the model, not the runner).</summary>
        internal DeviceTensor Table => _table;
    }
}

partial class LmHead
{
    partial class Runner
    {
        /// <summary>The head's weight [Vocab, Hidden] (for the fused head + loss of training).</summary>
        internal DeviceTensor Weight => _w;
    }
}

public sealed partial class Qwen2VLModel
{
    /// <summary>
    /// Vocabulary columns per chunk of the training loss (0: <see cref="LmHeadCrossEntropy.ChunkColumns"/> picks, so a
    /// chunk's logits stay within 64 MiB). Smaller values only cost speed; tests use them to force several chunks.
    /// </summary>
    public int LossChunkColumns { get; set; }

    /// <summary>
    /// The reference path of the training loss: the head's generated runner makes the full [B·S, V] f32 logits, the
    /// loss and dLoss/dLogits are computed on the host in double, and the head's generated Backward applies them.
    /// Off by default (it is what the fused path is tested against); <c>train</c> never sets it.
    /// </summary>
    public bool FullLogitsLoss { get; set; }

    private DeviceTensor? _dHeadInput;

    /// <summary>
    /// The lm_head and the mean shifted cross-entropy over <paramref name="labels"/> (−100 ignored) with their
    /// backward: adds the head weight's gradient into <paramref name="grads"/> and returns d(normed hidden) [B, S, H],
    /// the loss, its token count and the widest logits buffer used (columns of the vocabulary).
    /// </summary>
    private (float Loss, int Count, DeviceTensor DHidden, int LogitsColumns) HeadLossBackward(DeviceTensor normed, long[] labels,
        int b, int s, IGradientSink grads, float gradScale)
    {
        if (FullLogitsLoss)
        {
            var logits = Context.Download(_head.ForwardTrain(normed.Reshape(b * s, Hidden)));        // [B·S, V]
            var (fullLoss, fullCount, dLogits) = CrossEntropyGradient(logits, labels, b, s, gradScale);
            using var dLogitsT = Context.Upload(dLogits, b * s, Vocab);
            return (fullLoss, fullCount, _head.Backward(dLogitsT, grads)[0]!.Reshape(b, s, Hidden), Vocab);
        }

        // Targets shifted on the host: the hidden state at t predicts label t+1; the last position of a row predicts nothing.
        var targets = new int[b * s];
        for (int i = 0; i < targets.Length; i++)
        {
            long label = i % s == s - 1 ? HostOps.IgnoreIndex : labels[i + 1];
            if (label != HostOps.IgnoreIndex && (label < 0 || label >= Vocab))
                throw new ModelException($"labels[{i / s}, {i % s + 1}] = {label} is outside the vocabulary [0, {Vocab}) (use -100 to ignore a position)");
            targets[i] = (int)label;
        }
        if (_dHeadInput is null || _dHeadInput.Length < b * s * Hidden)
        {
            _dHeadInput?.Dispose();
            _dHeadInput = Context.Allocate(b * s * Hidden);
        }
        var dHidden = _dHeadInput.Slice(0, b * s * Hidden, b * s, Hidden);
        int count = LmHeadCrossEntropy.CountTargets(targets);
        int chunk = LmHeadCrossEntropy.ChunkColumns(b * s, Vocab, LossChunkColumns);
        if (count == 0)
        {
            Context.Clear(dHidden);
            return (float.NaN, 0, dHidden.Reshape(b, s, Hidden), 0);
        }
        var headGrad = grads.GradientOf(TiedHead ? "model.embed_tokens.weight" : "lm_head.weight");
        var (lossSum, _) = LmHeadCrossEntropy.ForwardBackward(Context, normed.Reshape(b * s, Hidden), _head.Weight, targets,
            gradScale / count, dHidden, headGrad, chunk, _staging);
        return (lossSum / count, count, dHidden.Reshape(b, s, Hidden), chunk);
    }

    /// <summary>Mean shifted cross-entropy in double over float32 logits, and dLoss/dLogits scaled by <paramref name="scale"/>.</summary>
    private (float Loss, int Count, float[] DLogits) CrossEntropyGradient(float[] logits, long[] labels, int batch, int seq, float scale)
    {
        var d = new float[logits.Length];
        int count = 0;
        for (int i = 0; i < labels.Length; i++)
            if (i % seq != 0 && labels[i] != HostOps.IgnoreIndex) count++;
        if (count == 0)
            return (float.NaN, 0, d);
        double total = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t + 1 < seq; t++)
            {
                long label = labels[b * seq + t + 1];
                if (label == HostOps.IgnoreIndex) continue;
                if (label < 0 || label >= Vocab)
                    throw new ModelException($"labels[{b}, {t + 1}] = {label} is outside the vocabulary [0, {Vocab}) (use -100 to ignore a position)");
                int at = (b * seq + t) * Vocab;
                var row = logits.AsSpan(at, Vocab);
                double max = double.NegativeInfinity;
                foreach (float z in row) max = Math.Max(max, z);
                double sum = 0;
                foreach (float z in row) sum += Math.Exp(z - max);
                total += max + Math.Log(sum) - row[(int)label];
                for (int v = 0; v < Vocab; v++)
                    d[at + v] = (float)(Math.Exp(row[v] - max) / sum / count * scale);
                d[at + (int)label] -= (float)(1.0 / count * scale);
            }
        return ((float)(total / count), count, d);
    }
}
