using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Reference;

namespace Qwen2VL.Model.Training.Data;

/// <summary>
/// M-RoPE position ids [3, B, S] for packed rows: every segment (a run of equal non-zero mask values) is numbered
/// as if it were a sample on its own — <see cref="RopeIndex"/> run on that segment alone with its own images and
/// videos — so position 0 starts again at each segment; padding positions are 1, as RopeIndex gives them. Rope
/// deltas only matter for decoding after a prompt, so training needs none.
/// </summary>
public static class PackedRopeIndex
{
    public static long[] Compute(ForwardInputs packed, VisionTokenIds tokenIds, int spatialMerge = 2)
    {
        int batch = packed.Batch, seq = packed.Seq;
        var mask = packed.MaskOrOnes();
        var imageGrids = packed.Images?.Grids ?? [];
        var videoGrids = packed.Videos?.Grids ?? [];
        int nextImage = 0, nextVideo = 0;
        var pos = new long[3 * batch * seq];
        Array.Fill(pos, 1L);
        for (int b = 0; b < batch; b++)
        {
            int s = 0;
            while (s < seq)
            {
                long segment = mask[b * seq + s];
                if (segment == 0) { s++; continue; }
                int end = s;
                while (end < seq && mask[b * seq + end] == segment) end++;
                var ids = packed.InputIds.AsSpan(b * seq + s, end - s).ToArray();
                var (images, videos) = CountItems(ids, tokenIds);
                if (nextImage + images > imageGrids.Count || nextVideo + videos > videoGrids.Count)
                    throw new TrainingDataException(
                        $"packed row {b} needs more image/video grids than the batch carries ({imageGrids.Count} images, {videoGrids.Count} videos)");
                var (segmentPos, _) = RopeIndex.Compute(ids, null, 1, ids.Length,
                    imageGrids.Skip(nextImage).Take(images).ToList(), videoGrids.Skip(nextVideo).Take(videos).ToList(),
                    tokenIds, spatialMerge);
                nextImage += images;
                nextVideo += videos;
                for (int a = 0; a < 3; a++)
                    segmentPos.AsSpan(a * ids.Length, ids.Length).CopyTo(pos.AsSpan((a * batch + b) * seq + s));
                s = end;
            }
        }
        return pos;
    }

    /// <summary>Vision items as RopeIndex counts them: a vision_start followed by an image or a video token.</summary>
    static (int Images, int Videos) CountItems(long[] ids, VisionTokenIds t)
    {
        int images = 0, videos = 0;
        for (int i = 0; i + 1 < ids.Length; i++)
            if (ids[i] == t.VisionStart)
            {
                if (ids[i + 1] == t.Image) images++;
                else if (ids[i + 1] == t.Video) videos++;
            }
        return (images, videos);
    }
}
