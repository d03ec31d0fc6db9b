using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Reference;

/// <summary>
/// M-RoPE position ids (spec §6.1, transformers v4.49 <c>get_rope_index</c>): text tokens count up on all three
/// axes; a vision block with merged grid (T, H/m, W/m) starting at text position b gets (b + t, b + h, b + w);
/// the next text token resumes at b + max(T, H/m, W/m). Only attention_mask == 1 tokens take part; padding
/// positions are 1. rope_delta = max position + 1 − padded row length.
/// </summary>
public static class RopeIndex
{
    /// <param name="inputIds">[B, S] row-major</param>
    /// <param name="attentionMask">[B, S] row-major, or null for all ones</param>
    /// <returns>PositionIds [3, B, S] row-major and RopeDeltas [B]</returns>
    public static (long[] PositionIds, long[] RopeDeltas) Compute(long[] inputIds, long[]? attentionMask, int batch, int seq,
        IReadOnlyList<GridThw> imageGrids, IReadOnlyList<GridThw> videoGrids, VisionTokenIds ids, int spatialMerge = 2)
    {
        if (inputIds.Length != batch * seq || (attentionMask is not null && attentionMask.Length != batch * seq))
            throw new ArgumentException($"RopeIndex: input_ids ({inputIds.Length}) and attention_mask ({attentionMask?.Length}) must hold B·S = {batch}·{seq} values");
        var pos = new long[3 * batch * seq];
        var deltas = new long[batch];
        bool Real(int b, int s) => attentionMask is null || attentionMask[b * seq + s] == 1;

        if (imageGrids.Count == 0 && videoGrids.Count == 0)
        {
            // Text only: cumsum(mask) − 1, padding 1; the delta's max runs over the padded row, padding included.
            for (int b = 0; b < batch; b++)
            {
                long count = 0, max = long.MinValue;
                for (int s = 0; s < seq; s++)
                {
                    long p = attentionMask is null ? s : (count += attentionMask[b * seq + s]) - 1;
                    if (attentionMask is not null && attentionMask[b * seq + s] == 0) p = 1;
                    for (int a = 0; a < 3; a++) pos[(a * batch + b) * seq + s] = p;
                    max = Math.Max(max, p);
                }
                deltas[b] = attentionMask is null ? 0 : max + 1 - seq;
            }
            return (pos, deltas);
        }

        int imageIndex = 0, videoIndex = 0;
        for (int b = 0; b < batch; b++)
        {
            var real = Enumerable.Range(0, seq).Where(s => Real(b, s)).ToArray();
            var tokens = real.Select(s => inputIds[b * seq + s]).ToArray();
            var rowPos = RowPositions(tokens, imageGrids, videoGrids, ref imageIndex, ref videoIndex, ids, spatialMerge);
            for (int s = 0; s < seq; s++)
                for (int a = 0; a < 3; a++) pos[(a * batch + b) * seq + s] = 1;
            long max = long.MinValue;
            for (int k = 0; k < real.Length; k++)
                for (int a = 0; a < 3; a++)
                {
                    pos[(a * batch + b) * seq + real[k]] = rowPos[a][k];
                    max = Math.Max(max, rowPos[a][k]);
                }
            // An all-padding row has no positions; transformers would fail on the empty max, here the delta is 0.
            deltas[b] = real.Length == 0 ? 0 : max + 1 - seq;
        }
        return (pos, deltas);
    }

    /// <summary>
    /// Decode-step position (spec §6.2): the token at cache position c (counted in the padded layout) gets
    /// c + rope_delta on all three axes.
    /// </summary>
    public static long DecodePosition(int cachePosition, long ropeDelta) => cachePosition + ropeDelta;

    private static long[][] RowPositions(long[] tokens, IReadOnlyList<GridThw> imageGrids, IReadOnlyList<GridThw> videoGrids,
        ref int imageIndex, ref int videoIndex, VisionTokenIds ids, int merge)
    {
        // Items in this row: a vision_start followed by an image or video token.
        int images = 0, videos = 0;
        for (int i = 0; i + 1 < tokens.Length; i++)
            if (tokens[i] == ids.VisionStart)
            {
                if (tokens[i + 1] == ids.Image) images++;
                else if (tokens[i + 1] == ids.Video) videos++;
            }

        var p = new[] { new List<long>(), new List<long>(), new List<long>() };
        long next = 0;
        int st = 0;
        void Text(int count)
        {
            for (int k = 0; k < count; k++)
                foreach (var axis in p) axis.Add(next + k);
            next += count;
        }

        int items = images + videos;
        for (int item = 0; item < items; item++)
        {
            int edImage = images > 0 ? IndexOf(tokens, ids.Image, st) : int.MaxValue;
            int edVideo = videos > 0 ? IndexOf(tokens, ids.Video, st) : int.MaxValue;
            GridThw g;
            int ed;
            if (edImage < edVideo)
            {
                if (imageIndex >= imageGrids.Count)
                    throw new ModelException($"input_ids hold more images than the {imageGrids.Count} image grids given");
                g = imageGrids[imageIndex++];
                images--;
                ed = edImage;
            }
            else
            {
                if (edVideo == int.MaxValue || videoIndex >= videoGrids.Count)
                    throw new ModelException($"input_ids hold more videos than the {videoGrids.Count} video grids given");
                g = videoGrids[videoIndex++];
                videos--;
                ed = edVideo;
            }
            Text(ed - st);
            int lt = g.T, lh = g.H / merge, lw = g.W / merge;
            for (int t = 0; t < lt; t++)
                for (int h = 0; h < lh; h++)
                    for (int w = 0; w < lw; w++)
                    {
                        p[0].Add(next + t);
                        p[1].Add(next + h);
                        p[2].Add(next + w);
                    }
            next += Math.Max(lt, Math.Max(lh, lw));
            st = ed + lt * lh * lw;
        }
        if (st < tokens.Length) Text(tokens.Length - st);
        if (p[0].Count != tokens.Length)
            throw new ModelException($"vision grids cover {p[0].Count} positions but the row has {tokens.Length} real tokens");
        return [p[0].ToArray(), p[1].ToArray(), p[2].ToArray()];
    }

    private static int IndexOf(long[] tokens, long id, int start)
    {
        int i = Array.IndexOf(tokens, id, Math.Min(start, tokens.Length));
        return i < 0 ? int.MaxValue : i;
    }
}
