using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Reference;
using Qwen2VL.Model.Text;
using Qwen2VL.Model.Training.Data;
using Qwen2VL.Tests.Text;

namespace Qwen2VL.Tests.Training.Data;

/// <summary>The fixture tokenizer and processor, and small in-memory images for the training data tests.</summary>
internal static class TrainingDataTestSupport
{
    public static Qwen2Tokenizer Tokenizer { get; } = Qwen2Tokenizer.Load(TokenizerTestData.TinyTokenizerPath);

    public static ImageProcessor Processor { get; } =
        ImageProcessor.Load(Path.Combine(TokenizerTestData.RepoRoot, "tests", "fixtures", "qwen2vl-tiny", "preprocessor_config.json"));

    /// <summary>Ids of the fixture tokenizer (= tests/fixtures/qwen2vl-tiny/config.json).</summary>
    public const long VisionStart = 500, VisionEnd = 501, ImagePad = 502, VideoPad = 503, ImEnd = 504, EndOfText = 505, ImStart = 506;

    public static VisionTokenIds VisionIds { get; } = new(VisionStart, ImagePad, VideoPad);

    public static SampleEncoder Encoder(SampleEncoderOptions? options = null) => new(Tokenizer, Processor, options);

    /// <summary>A w×h image whose bytes follow a seed, so different images have different pixels.</summary>
    public static RgbImage Image(int w, int h, int seed)
    {
        var rgb = new byte[w * h * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 7 + seed * 31);
        return new RgbImage(w, h, rgb);
    }

    public static EncodedSample TextOnly(string user, string answer) =>
        Encoder().Encode([new TrainingMessage("user", user), new TrainingMessage("assistant", answer)], [], []);

    public static EncodedSample WithImage(string user, string answer, int w, int h, int seed) =>
        Encoder().Encode([new TrainingMessage("user", "<image>" + user), new TrainingMessage("assistant", answer)], [Image(w, h, seed)], []);
}
