namespace Qwen2VL.Runtime.Training;

/// <summary>Learning-rate schedules.</summary>
public static class LearningRate
{
    /// <summary>
    /// Linear warm-up then cosine decay, as transformers' get_cosine_schedule_with_warmup with a floor:
    /// for step &lt; warmupSteps, peak · step / warmupSteps (0 at step 0); afterwards
    /// min + (peak − min) · ½ · (1 + cos(π · progress)) with progress = (step − warmupSteps) / (totalSteps − warmupSteps),
    /// clamped to [0, 1] so steps past totalSteps stay at <paramref name="min"/>. Steps count from 0.
    /// </summary>
    public static float CosineWithWarmup(int step, int warmupSteps, int totalSteps, float peak, float min)
    {
        if (step < 0 || warmupSteps < 0 || totalSteps < warmupSteps)
            throw new ArgumentException($"need step ≥ 0 and 0 ≤ warmupSteps ≤ totalSteps; got step={step}, warmup={warmupSteps}, total={totalSteps}");
        if (step < warmupSteps) return (float)((double)peak * step / warmupSteps);
        double progress = Math.Clamp((double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps), 0, 1);
        return (float)(min + (peak - min) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
