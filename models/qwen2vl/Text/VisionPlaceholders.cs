using System.Text;

namespace Qwen2VL.Model.Text;

/// <summary>
/// Placeholder expansion (spec §4.1): the k-th <c>&lt;|image_pad|&gt;</c> of the prompt, left to right, becomes
/// grid_t·grid_h·grid_w / mergeSize² copies of itself, one per merged patch of the k-th image, so the prompt has
/// exactly as many pad tokens as the vision encoder yields embeddings; likewise <c>&lt;|video_pad|&gt;</c> with the
/// video grids.
/// </summary>
public static class VisionPlaceholders
{
    public static string Expand(
        string prompt,
        IReadOnlyList<(int t, int h, int w)> imageGrids,
        IReadOnlyList<(int t, int h, int w)> videoGrids,
        int mergeSize = 2)
    {
        if (mergeSize < 1) throw new TokenizerException($"merge size must be at least 1, got {mergeSize}");
        var imageCount = CountOccurrences(prompt, ChatTemplate.ImagePad);
        var videoCount = CountOccurrences(prompt, ChatTemplate.VideoPad);
        if (imageCount != imageGrids.Count)
            throw new TokenizerException($"the prompt has {imageCount} {ChatTemplate.ImagePad} placeholders but {imageGrids.Count} image grids were given");
        if (videoCount != videoGrids.Count)
            throw new TokenizerException($"the prompt has {videoCount} {ChatTemplate.VideoPad} placeholders but {videoGrids.Count} video grids were given");

        var sb = new StringBuilder(prompt.Length);
        int image = 0, video = 0, i = 0;
        while (i < prompt.Length)
        {
            if (string.CompareOrdinal(prompt, i, ChatTemplate.ImagePad, 0, ChatTemplate.ImagePad.Length) == 0)
            {
                Repeat(sb, ChatTemplate.ImagePad, PadCount(imageGrids[image], mergeSize, $"image {image}"));
                image++;
                i += ChatTemplate.ImagePad.Length;
            }
            else if (string.CompareOrdinal(prompt, i, ChatTemplate.VideoPad, 0, ChatTemplate.VideoPad.Length) == 0)
            {
                Repeat(sb, ChatTemplate.VideoPad, PadCount(videoGrids[video], mergeSize, $"video {video}"));
                video++;
                i += ChatTemplate.VideoPad.Length;
            }
            else
            {
                sb.Append(prompt[i++]);
            }
        }
        return sb.ToString();
    }

    /// <summary>Merged patches of one grid: t·h·w / merge²; h and w are whole multiples of the merge size.</summary>
    public static int PadCount((int t, int h, int w) grid, int mergeSize, string what = "grid")
    {
        var (t, h, w) = grid;
        if (t < 1 || h < 1 || w < 1 || h % mergeSize != 0 || w % mergeSize != 0)
            throw new TokenizerException($"{what} grid (t={t}, h={h}, w={w}) is invalid: t, h, w must be positive and h, w multiples of the merge size {mergeSize}");
        return checked(t * h * w / (mergeSize * mergeSize));
    }

    private static int CountOccurrences(string text, string token)
    {
        var count = 0;
        for (var i = text.IndexOf(token, StringComparison.Ordinal); i >= 0; i = text.IndexOf(token, i + token.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    private static void Repeat(StringBuilder sb, string token, int count)
    {
        for (var k = 0; k < count; k++) sb.Append(token);
    }
}
