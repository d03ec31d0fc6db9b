using Qwen2VL.Model.Training.Reporting;
using Qwen2VL.Runtime.Checkpoints;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Training.Checkpoints;

/// <summary>
/// A toy trainer (linear regression, Adam, RNG-driven gradient noise, a data cursor and a warm-up schedule)
/// keeps all its state in a checkpoint. A run killed after step 12 and resumed from its step-8 checkpoint must
/// log exactly the losses of an uninterrupted run, bit for bit, and the loss log must read as one run.
/// </summary>
public class ResumeDeterminismTests
{
    private const int Dim = 8, Examples = 24, Batch = 5;

    private sealed class ToyTrainer
    {
        public float[] W = new float[Dim], M = new float[Dim], V = new float[Dim];
        public long Step;
        public DataPosition Position;
        public ulong Rng = 0x9E3779B97F4A7C15;
        public List<(long, double)> Losses = [];

        private static (float[] X, float Y) Example(int i)
        {
            var x = new float[Dim];
            for (int d = 0; d < Dim; d++) x[d] = MathF.Sin(i * 0.7f + d);
            return (x, MathF.Cos(i * 0.3f));
        }

        private float NextNoise() // xorshift64: its whole state is one ulong, saved as 8 bytes
        {
            Rng ^= Rng << 13; Rng ^= Rng >> 7; Rng ^= Rng << 17;
            return (Rng >> 40) / (float)(1 << 24) - 0.5f;
        }

        private float LearningRate => 0.05f * Math.Min(1f, (Step + 1) / 5f);

        public double TrainStep()
        {
            var grad = new float[Dim];
            double loss = 0;
            for (int b = 0; b < Batch; b++)
            {
                var (x, y) = Example(Position.Index);
                Position = Position.Index + 1 == Examples ? new DataPosition(Position.Pass + 1, 0) : Position with { Index = Position.Index + 1 };
                float error = x.Select((v, d) => v * W[d]).Sum() - y;
                loss += error * error / Batch;
                for (int d = 0; d < Dim; d++) grad[d] += 2 * error * x[d] / Batch + 0.01f * NextNoise();
            }
            Step++;
            for (int d = 0; d < Dim; d++)
            {
                M[d] = 0.9f * M[d] + 0.1f * grad[d];
                V[d] = 0.999f * V[d] + 0.001f * grad[d] * grad[d];
                float mHat = M[d] / (1 - MathF.Pow(0.9f, Step)), vHat = V[d] / (1 - MathF.Pow(0.999f, Step));
                W[d] -= LearningRate * mHat / (MathF.Sqrt(vHat) + 1e-8f);
            }
            Losses.Add((Step, loss));
            return loss;
        }

        public CheckpointContent ToCheckpoint() => new(
            [("w", (float[])W.Clone(), [Dim])], "{}",
            new OptimizerState((float[])M.Clone(), (float[])V.Clone(), [new OptimizerSlot("w", 0, [Dim])]),
            new TrainerState
            {
                Step = Step, Epoch = Position.Pass, DataPosition = Position, RngState = BitConverter.GetBytes(Rng),
                LearningRateSchedule = new Dictionary<string, double> { ["current_lr"] = LearningRate }, LossHistory = Losses.ToList(),
            });

        public static ToyTrainer FromCheckpoint(CheckpointContent c) => new()
        {
            W = c.Weights.Single().Data, M = c.Optimizer!.M, V = c.Optimizer.V, Step = c.Trainer.Step,
            Position = c.Trainer.DataPosition, Rng = BitConverter.ToUInt64(c.Trainer.RngState), Losses = c.Trainer.LossHistory.ToList(),
        };

        public void Train(LossLog log, long until, Action<ToyTrainer>? afterStep = null)
        {
            while (Step < until)
            {
                double loss = TrainStep();
                log.Append(new LossLogRow(Step, Position.Pass, loss, LearningRate, 1000, null));
                afterStep?.Invoke(this);
            }
        }
    }

    [Fact]
    public void ResumedRunLogsTheSameLossesAsAnUninterruptedOne()
    {
        using var dir = new TempDirectory();
        string straightLog = dir.File("straight.csv"), resumedLog = dir.File("resumed.csv"), checkpoints = dir.File("ckpt");

        var straight = new ToyTrainer();
        using (LossLog log = LossLog.Create(straightLog)) straight.Train(log, 20);

        var first = new ToyTrainer();
        using (LossLog log = LossLog.Create(resumedLog))
            first.Train(log, 12, t => { if (t.Step % 4 == 0 && t.Step <= 8) TrainingCheckpoint.Save(checkpoints, t.ToCheckpoint()); });
        // "Killed" at step 12: steps 9-12 are logged but were never saved.

        ToyTrainer resumed = ToyTrainer.FromCheckpoint(TrainingCheckpoint.LoadLatest(checkpoints)!);
        Assert.Equal(8, resumed.Step);
        using (LossLog log = LossLog.Resume(resumedLog, resumed.Step)) resumed.Train(log, 20);

        Assert.Equal(File.ReadAllText(straightLog), File.ReadAllText(resumedLog));
        Assert.Equal(straight.W.Select(BitConverter.SingleToInt32Bits), resumed.W.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(20, LossLog.Read(resumedLog).Count);
        Assert.True(straight.Losses[^1].Item2 < straight.Losses[0].Item2, "the toy model did not learn");
    }
}
