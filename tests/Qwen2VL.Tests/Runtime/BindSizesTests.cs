using Qwen2VL.Model.Compiled;
using Qwen2VL.Model.Decoder;
using Qwen2VL.Runtime;
using Qwen2VL.Runtime.Aot;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>
/// Issue 9 step 6: the runners' index arithmetic at the 72B config and 32K tokens, bound from shapes only (no weights,
/// no device). Products of dims are formed in 64 bits, so B·Hidden·KvHeads·S = 2^31 (which wrapped to −2^31 in 32 bits)
/// no longer breaks the decoder's key/value sizes; a value that itself passes 2^31 − 1 elements (a device buffer's
/// limit with 32-bit indices) is a bind-time error naming its dims.
/// </summary>
public sealed class BindSizesTests
{
    private static ModelConfig Config72B => CanonicalConfig.FromJson(BuiltInConfigs.Get("72b"), "72b config.json");

    [Fact]
    public void The72BConfigBindsAt32KTokens()
    {
        var config = Config72B;
        // The product the decoder's k/v sizes are formed from passes 2^31 at one row of 32K tokens...
        Assert.True(1L * 8192 * 8 * 32768 > int.MaxValue);
        Assert.Equal(8192, config.GetInt("hidden_size"));
        Assert.Equal(8, config.GetInt("num_key_value_heads"));
        // ...and every value of a forward, a generation step and a training step still fits: a 32K-token prompt, half of
        // it one image (4 patches per merged token).
        Qwen2VLModel.CheckSizes(config, batch: 1, seq: 32768, visionPatches: 4 * 16384, visionItems: 1);
        DecoderLayer.Runner.CheckSizes(config, 1, 32768);
    }

    [Fact]
    public void FullLogitsAt32KTokensAreABindTimeErrorNamingTheDims()
    {
        var e = Assert.Throws<ModelException>(() => Qwen2VLModel.CheckSizes(Config72B, batch: 1, seq: 32768, fullLogits: true));
        Assert.Equal("LmHead: Linear [T, Vocab] (line 56) needs T*Vocab = 4982833152 elements (T = 32768, Vocab = 152064); "
            + "a device buffer holds at most 2147483647 (32-bit indices)", e.Message);
    }

    [Fact]
    public void EightRowsOf32KTokensAreABindTimeErrorNamingTheDims()
    {
        var e = Assert.Throws<ModelException>(() => DecoderLayer.Runner.CheckSizes(Config72B, 8, 32768));
        Assert.Equal("DecoderLayer: x [B, S, Hidden] (line 42) needs B*Hidden*S = 2147483648 elements (B = 8, Hidden = 8192, S = 32768); "
            + "a device buffer holds at most 2147483647 (32-bit indices)", e.Message);
    }
}
