using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Compiled;

/// <summary>
/// The safetensors files of the <c>forward</c> command, with the golden fixtures' names and layouts (fixture README):
/// inputs <c>input_ids</c>, <c>attention_mask</c>, optional <c>labels</c> (I64 [B, S]), optional
/// <c>pixel_values</c> + <c>image_grid_thw</c> and <c>pixel_values_videos</c> + <c>video_grid_thw</c>.
/// </summary>
public static class ForwardFiles
{
    public static ForwardInputs ReadInputs(string path)
    {
        using var file = SafetensorsFile.Open(path);
        string name = Path.GetFileName(path);
        var ids = file.Info("input_ids");
        if (ids.Shape.Length != 2)
            throw new ModelException($"{name}: input_ids must be [batch, seq], got {SafetensorsDTypes.FormatShape(ids.Shape)}");
        int batch = checked((int)ids.Shape[0]), seq = checked((int)ids.Shape[1]);
        return new ForwardInputs(
            file.ReadInt64("input_ids"), batch, seq,
            Optional(file, name, "attention_mask", batch, seq),
            ReadVision(file, name, "pixel_values", "image_grid_thw"),
            ReadVision(file, name, "pixel_values_videos", "video_grid_thw"),
            Optional(file, name, "labels", batch, seq));
    }

    /// <summary>
    /// Writes position_ids [3, B, S] and rope_deltas [B, 1] (I64), image_embeds / video_embeds [tokens, H],
    /// hidden_states [L + 1, B, S, H], logits [B, S, V], loss [] (F32) and, after generation,
    /// generated_new_tokens [B, N] (I64); atomically (temporary file, then rename).
    /// </summary>
    public static void WriteOutputs(string path, ForwardOutput output, GenerationOutput? generated = null,
        IReadOnlyDictionary<string, float[]>? gradients = null, Func<string, int[]>? shapeOf = null)
    {
        int b = output.Batch, s = output.Seq, h = output.Hidden;
        var entries = new List<SafetensorsEntry>
        {
            SafetensorsEntry.I64("position_ids", output.PositionIds, 3, b, s),
            SafetensorsEntry.I64("rope_deltas", output.RopeDeltas, b, 1),
        };
        if (output.ImageEmbeds is { } images) entries.Add(SafetensorsEntry.F32("image_embeds", images, images.Length / h, h));
        if (output.VideoEmbeds is { } videos) entries.Add(SafetensorsEntry.F32("video_embeds", videos, videos.Length / h, h));
        var hidden = output.HiddenStates.SelectMany(x => x).ToArray();
        entries.Add(SafetensorsEntry.F32("hidden_states", hidden, output.HiddenStates.Count, b, s, h));
        entries.Add(SafetensorsEntry.F32("logits", output.Logits, b, s, output.Vocab));
        if (output.Loss is { } loss) entries.Add(SafetensorsEntry.F32("loss", [loss]));
        if (generated is not null)
            entries.Add(SafetensorsEntry.I64("generated_new_tokens", generated.NewTokens, generated.Batch, generated.Steps));
        foreach (var (name, grad) in (gradients ?? new Dictionary<string, float[]>()).OrderBy(g => g.Key, StringComparer.Ordinal))
            entries.Add(SafetensorsEntry.F32("grad." + name, grad, shapeOf!(name).Select(d => (long)d).ToArray()));
        SafetensorsWriter.Write(path, entries, new Dictionary<string, string> { ["format"] = "pt" });
    }

    private static long[]? Optional(SafetensorsFile file, string name, string tensor, int batch, int seq)
    {
        if (!file.Tensors.TryGetValue(tensor, out var info)) return null;
        if (info.Shape.Length != 2 || info.Shape[0] != batch || info.Shape[1] != seq)
            throw new ModelException($"{name}: {tensor} is {SafetensorsDTypes.FormatShape(info.Shape)}, input_ids is [{batch}, {seq}]");
        return file.ReadInt64(tensor);
    }

    private static VisionBatch? ReadVision(SafetensorsFile file, string name, string pixels, string grid)
    {
        bool hasPixels = file.Tensors.TryGetValue(pixels, out var p), hasGrid = file.Tensors.TryGetValue(grid, out var g);
        if (!hasPixels && !hasGrid) return null;
        if (!hasPixels || !hasGrid)
            throw new ModelException($"{name}: {(hasPixels ? pixels : grid)} needs {(hasPixels ? grid : pixels)} as well");
        if (p!.Shape.Length != 2)
            throw new ModelException($"{name}: {pixels} must be [patches, channels·2·14·14], got {SafetensorsDTypes.FormatShape(p.Shape)}");
        if (g!.Shape.Length != 2 || g.Shape[1] != 3)
            throw new ModelException($"{name}: {grid} must be [items, 3] (t, h, w), got {SafetensorsDTypes.FormatShape(g.Shape)}");
        var thw = file.ReadInt64(grid);
        if (thw.Any(v => v <= 0 || v > int.MaxValue))
            throw new ModelException($"{name}: {grid} holds a size outside [1, {int.MaxValue}]: [{string.Join(", ", thw)}]");
        return new VisionBatch(file.ReadFloat32(pixels), checked((int)p.Shape[0]), checked((int)p.Shape[1]), GridThw.FromRows(thw));
    }
}
