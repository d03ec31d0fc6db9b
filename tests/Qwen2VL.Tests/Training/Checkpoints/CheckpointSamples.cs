using Qwen2VL.Runtime.Checkpoints;
using Xunit;

namespace Qwen2VL.Tests.Training.Checkpoints;

/// <summary>Deterministic checkpoint contents that differ per step, and a field-by-field exact comparison.</summary>
internal static class CheckpointSamples
{
    public const string Config = "{\"model_type\": \"qwen2_vl\", \"hidden_size\": 8}\n";

    public static float[] Values(int count, long seed)
    {
        var random = new Random((int)seed);
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 4 - 2);
        return values;
    }

    public static CheckpointContent Content(long step, int scale = 1)
    {
        var weights = new List<(string, float[], int[])>
        {
            ("model.embed_tokens.weight", Values(16 * 8 * scale, step), [16 * scale, 8]),
            ("model.layers.0.self_attn.q_proj.bias", Values(8, step + 1), [8]),
            ("visual.patch_embed.proj.weight", Values(8 * 3 * 2 * 2 * 2, step + 2), [8, 3, 2, 2, 2]),
        };
        int moments = 16 * 8 * scale + 8;
        var optimizer = new OptimizerState(Values(moments, step + 10), Values(moments, step + 11).Select(Math.Abs).ToArray(),
            [new OptimizerSlot("model.embed_tokens.weight", 0, [16 * scale, 8]), new OptimizerSlot("model.layers.0.self_attn.q_proj.bias", 16 * 8 * scale, [8])]);
        var trainer = new TrainerState
        {
            Step = step,
            Epoch = (int)(step / 10),
            DataPosition = new DataPosition((int)(step / 10), (int)(step % 10) * 3),
            RngState = [(byte)step, 1, 2, 3, 255, 0, 17],
            LearningRateSchedule = new Dictionary<string, double> { ["base_lr"] = 1e-4, ["warmup_steps"] = 10, ["current_lr"] = 1e-4 * step / 10.0 },
            LossHistory = Enumerable.Range(0, 5).Select(i => (step - 4 + i, 1.0 / (step + i + 1) + 0.1)).ToList(),
        };
        return new CheckpointContent(weights, Config, optimizer, trainer)
        {
            ExtraFiles = new Dictionary<string, byte[]> { ["tokenizer.json"] = [(byte)'{', 0xC3, 0xA9, 0, (byte)'}'] },
        };
    }

    /// <summary>Every field equal, floats compared bit for bit.</summary>
    public static void AssertSame(CheckpointContent expected, CheckpointContent? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Weights.Select(w => w.Name), actual.Weights.Select(w => w.Name));
        for (int i = 0; i < expected.Weights.Count; i++)
        {
            Assert.Equal(expected.Weights[i].Shape, actual.Weights[i].Shape);
            AssertBits(expected.Weights[i].Data, actual.Weights[i].Data);
        }
        Assert.Equal(expected.ConfigJson, actual.ConfigJson);
        Assert.Equal(expected.ExtraFiles.OrderBy(f => f.Key), actual.ExtraFiles.OrderBy(f => f.Key));
        Assert.Equal(expected.Optimizer is null, actual.Optimizer is null);
        if (expected.Optimizer is { } m)
        {
            AssertBits(m.M, actual.Optimizer!.M);
            AssertBits(m.V, actual.Optimizer.V);
            Assert.Equal(m.Layout.Select(s => (s.Name, s.Offset, string.Join(",", s.Shape))),
                actual.Optimizer.Layout.Select(s => (s.Name, s.Offset, string.Join(",", s.Shape))));
        }
        TrainerState e = expected.Trainer, a = actual.Trainer;
        Assert.Equal((e.Step, e.Epoch, e.DataPosition), (a.Step, a.Epoch, a.DataPosition));
        Assert.Equal(e.RngState, a.RngState);
        Assert.Equal(e.LearningRateSchedule.OrderBy(p => p.Key), a.LearningRateSchedule.OrderBy(p => p.Key));
        Assert.Equal(e.LossHistory.Select(l => (l.Step, BitConverter.DoubleToInt64Bits(l.Loss))),
            a.LossHistory.Select(l => (l.Step, BitConverter.DoubleToInt64Bits(l.Loss))));
    }

    public static void AssertBits(float[] expected, float[] actual) =>
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
}
