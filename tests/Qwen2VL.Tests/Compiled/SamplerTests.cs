using Qwen2VL.Model.Generation;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Compiled;

/// <summary>The token chooser: greedy ties, repetition penalty, top-k / top-p truncation and seeded draws.</summary>
public sealed class SamplerTests
{
    private static readonly HashSet<long> None = [];

    [Fact]
    public void GreedyTakesTheFirstLargestLogit()
    {
        var sampler = new TokenSampler(SamplingOptions.Greedy);
        Assert.Equal(1, sampler.Next([0f, 3f, 3f, -1f], None));
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokens()
    {
        var sampler = new TokenSampler(SamplingOptions.Greedy with { RepetitionPenalty = 2.0 });
        // 3 → 1.5 (seen) loses to 2; a seen −1 → −2 loses to an unseen −1.5.
        Assert.Equal(1, sampler.Next([3f, 2f], new HashSet<long> { 0 }));
        Assert.Equal(1, sampler.Next([-1f, -1.5f], new HashSet<long> { 0 }));
    }

    [Fact]
    public void TopKOneAndTinyTopPAreGreedy()
    {
        float[] logits = [0.1f, 0.3f, 2.5f, 2.4f, -3f];
        var topK = new TokenSampler(new SamplingOptions { Temperature = 1.5, TopK = 1, Seed = 1 });
        var topP = new TokenSampler(new SamplingOptions { Temperature = 1.5, TopP = 1e-6, Seed = 2 });
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(2, topK.Next(logits, None));
            Assert.Equal(2, topP.Next(logits, None));
        }
    }

    [Fact]
    public void TopKTwoDrawsOnlyTheTwoBestAndBoth()
    {
        var sampler = new TokenSampler(new SamplingOptions { Temperature = 1.0, TopK = 2, Seed = 7 });
        var drawn = Enumerable.Range(0, 400).Select(_ => sampler.Next([0f, 1f, 1.1f, 0.5f], None)).ToHashSet();
        Assert.Equal(new HashSet<long> { 1, 2 }, drawn);
    }

    [Fact]
    public void TopKKeepsEveryTieOfTheKthScoreAndTopPZeroKeepsTheBest()
    {
        // transformers' TopKLogitsWarper removes only scores below the k-th largest: 1.0 ties for second place.
        var topK = new TokenSampler(new SamplingOptions { Temperature = 1.0, TopK = 2, Seed = 5 });
        var drawn = Enumerable.Range(0, 600).Select(_ => topK.Next([2f, 1f, 1f, 0.5f], None)).ToHashSet();
        Assert.Equal(new HashSet<long> { 0, 1, 2 }, drawn);
        // TopPLogitsWarper accepts top_p = 0 and keeps min_tokens_to_keep = 1 token.
        var topP = new TokenSampler(new SamplingOptions { Temperature = 1.0, TopP = 0, Seed = 6 });
        Assert.All(Enumerable.Range(0, 50), _ => Assert.Equal(1, topP.Next([0.5f, 0.9f, 0.1f], None)));
    }

    [Fact]
    public void SampledFrequenciesFollowTheSoftmax()
    {
        // p = softmax([0, ln 3]) = [0.25, 0.75].
        var sampler = new TokenSampler(new SamplingOptions { Temperature = 1.0, Seed = 3 });
        int ones = Enumerable.Range(0, 20000).Count(_ => sampler.Next([0f, MathF.Log(3f)], None) == 1);
        Assert.InRange(ones / 20000.0, 0.73, 0.77);
    }

    [Fact]
    public void TheSameSeedDrawsTheSameTokens()
    {
        float[] logits = Enumerable.Range(0, 50).Select(i => MathF.Sin(i)).ToArray();
        long[] Draw(int seed)
        {
            var s = new TokenSampler(new SamplingOptions { Temperature = 0.8, TopP = 0.9, Seed = seed });
            return Enumerable.Range(0, 30).Select(_ => s.Next(logits, None)).ToArray();
        }
        Assert.Equal(Draw(42), Draw(42));
        Assert.NotEqual(Draw(42), Draw(43));
    }

    [Theory]
    [InlineData(-0.5, 0, 1.0, 1.0, "temperature")]
    [InlineData(1.0, -1, 1.0, 1.0, "top-k")]
    [InlineData(1.0, 0, -0.1, 1.0, "top-p")]
    [InlineData(1.0, 0, 1.5, 1.0, "top-p")]
    [InlineData(1.0, 0, 1.0, 0.0, "repetition penalty")]
    public void OptionsOutOfRangeAreNamed(double temperature, int topK, double topP, double penalty, string named)
    {
        var options = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };
        Assert.Contains(named, Assert.Throws<ModelException>(() => new TokenSampler(options)).Message);
    }
}
