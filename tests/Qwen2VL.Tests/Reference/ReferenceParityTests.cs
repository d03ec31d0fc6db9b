using Qwen2VL.Dsl;
using Qwen2VL.Model.Reference;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Reference;

/// <summary>
/// The float64 reference against the transformers v4.49 float32 golden outputs of the tiny model (fixture README:
/// a float64 re-implementation should land within ~1e-5 of every float tensor; ids exactly).
/// </summary>
public class ReferenceParityTests(TinyFixture fixture, ITestOutputHelper log) : IClassFixture<TinyFixture>
{
    private const double Atol = 1e-5;

    public static TheoryData<string> Cases => new(TinyFixture.CaseNames);

    public static TheoryData<string> VisionCases => new("a_image_text", "b_batch2_two_images_leftpad", "c_video_text");

    [Theory]
    [MemberData(nameof(Cases))]
    public void PositionIdsAndRopeDeltas_MatchExactly(string name)
    {
        var c = fixture.Case(name);
        var o = fixture.Output(name);
        Assert.Equal(c.Expected["position_ids"].ToInt64Array(), o.PositionIds);
        Assert.Equal(c.Expected["rope_deltas"].ToInt64Array(), o.RopeDeltas);
    }

    [Theory]
    [MemberData(nameof(VisionCases))]
    public void VisionStages_Match(string name)
    {
        var c = fixture.Case(name);
        var o = fixture.Output(name);
        var (kind, trace, input) = c.Images is not null ? ("image", o.Images!, c.Images) : ("video", o.Videos!, c.Videos!);
        FixtureAssert.Close($"{kind}_vision_patch_embed", c.Expected[$"{kind}_vision_patch_embed"], trace.PatchEmbed, Atol, log);
        for (int i = 0; i < trace.Blocks.Length; i++)
            FixtureAssert.Close($"{kind}_vision_block_{i}", c.Expected[$"{kind}_vision_block_{i}"], trace.Blocks[i], Atol, log);
        FixtureAssert.Close($"{kind}_embeds", c.Expected[$"{kind}_embeds"], trace.Embeds, Atol, log);

        // The DSL module's own Forward computes the same thing as the staged trace.
        var n = input.PixelValues.Shape[0];
        var pos = Tensor.FromInt64(PatchPositions(input.Grids), n, 2);
        var cu = CuSeqlens(input.Grids);
        var tower = fixture.Model.Vision.Forward(input.PixelValues, pos, Tensor.FromInt64(cu, cu.Length));
        FixtureAssert.Close("VisionTower.Forward vs trace", trace.Embeds, tower, 0);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void HiddenStates_MatchOnRealTokens(string name)
    {
        var c = fixture.Case(name);
        var o = fixture.Output(name);
        var expected = c.Expected["hidden_states"];
        Assert.Equal(expected.Shape[0], o.HiddenStates.Length);
        for (int k = 0; k < o.HiddenStates.Length; k++)
            FixtureAssert.Close($"hidden_states[{k}]", FixtureAssert.Slice(expected, k), o.HiddenStates[k], Atol, log, c.AttentionMask);
        FixtureAssert.Close("last_layer_output_prenorm", c.Expected["last_layer_output_prenorm"], o.LastLayerPrenorm, Atol, log, c.AttentionMask);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Logits_MatchOnRealTokens(string name)
    {
        var c = fixture.Case(name);
        FixtureAssert.Close("logits", c.Expected["logits"], fixture.Output(name).Logits, Atol, log, c.AttentionMask);
    }

    [Theory]
    [InlineData("a_image_text")]
    [InlineData("c_video_text")]
    [InlineData("d_text_only")]
    public void Loss_MatchesUnpaddedCases(string name)
    {
        var c = fixture.Case(name);
        double loss = fixture.Output(name).Loss!.Value, expected = c.Expected["loss"].Data[0];
        log.WriteLine($"loss {loss:R} vs {expected:R}: diff {Math.Abs(loss - expected):E2}");
        Assert.True(Math.Abs(loss - expected) <= Atol, $"loss {loss} vs expected {expected}: diff {Math.Abs(loss - expected):E3}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LossFormula_OnGoldenLogits_ReproducesGoldenLoss(string name)
    {
        var c = fixture.Case(name);
        double loss = CrossEntropy.ShiftedMean(c.Expected["logits"], c.Labels), expected = c.Expected["loss"].Data[0];
        Assert.True(Math.Abs(loss - expected) <= Atol, $"loss of the golden logits {loss} vs golden loss {expected}");
    }

    /// <summary>
    /// In the left-padded case, the golden loss includes the first real token of row 1 as predicted from the
    /// padding position before it, whose logits depend on what attention does for a query that sees no key
    /// (transformers eager: a uniform mean over all S values; the CausalAttention op: zeros). Over every term
    /// predicted from a real position the reference loss matches.
    /// </summary>
    [Fact]
    public void Loss_PaddedBatch_MatchesOnTermsPredictedFromRealPositions()
    {
        var c = fixture.Case("b_batch2_two_images_leftpad");
        var labels = (long[])c.Labels.Clone();
        int dropped = 0;
        for (int b = 0; b < c.Batch; b++)
            for (int t = 1; t < c.Seq; t++)
                if (c.AttentionMask[b * c.Seq + t - 1] == 0 && labels[b * c.Seq + t] != CrossEntropy.IgnoreIndex)
                {
                    labels[b * c.Seq + t] = CrossEntropy.IgnoreIndex;
                    dropped++;
                }
        Assert.Equal(1, dropped);
        double ours = CrossEntropy.ShiftedMean(fixture.Output(c.Name).Logits, labels);
        double golden = CrossEntropy.ShiftedMean(c.Expected["logits"], labels);
        log.WriteLine($"loss over real-position terms {ours:R} vs {golden:R}: diff {Math.Abs(ours - golden):E2}; " +
                      $"full loss {fixture.Output(c.Name).Loss:R} vs golden {c.Expected["loss"].Data[0]:R}");
        Assert.True(Math.Abs(ours - golden) <= Atol, $"loss over real-position terms {ours} vs {golden}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GreedyGeneration_MatchesTokensAndStepLogits(string name)
    {
        var c = fixture.Case(name);
        var g = fixture.Generation(name);
        Assert.Equal(8, g.Steps);
        Assert.Equal(c.Expected["generated_new_tokens"].ToInt64Array(), g.NewTokens);
        var stepLogits = c.Expected["generate_step_logits"];
        FixtureAssert.Close("generate_step_logits", stepLogits, new Tensor(stepLogits.Shape, g.StepLogits), Atol, log);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DecodePositions_MatchGolden(string name)
    {
        // generate_decode_position_ids [7, 3, B, 1]: steps 1..7 feed the token at cache position S + step − 1.
        var c = fixture.Case(name);
        var expected = c.Expected["generate_decode_position_ids"];
        var deltas = fixture.Output(name).RopeDeltas;
        for (int step = 1; step <= 7; step++)
            for (int axis = 0; axis < 3; axis++)
                for (int b = 0; b < c.Batch; b++)
                    Assert.Equal((long)expected[step - 1, axis, b, 0], RopeIndex.DecodePosition(c.Seq + step - 1, deltas[b]));
    }

    // Independent spelling of the spec §5.3/§5.4 geometry (window order, segment per frame pair) for the module check.
    private static long[] PatchPositions(IReadOnlyList<GridThw> grids) =>
        grids.SelectMany(g => Enumerable.Range(0, g.T * g.H * g.W).SelectMany(r =>
        {
            int inT = r % (g.H * g.W), window = inT / 4, within = inT % 4;
            int bh = window / (g.W / 2), bw = window % (g.W / 2);
            return new long[] { 2 * bh + within / 2, 2 * bw + within % 2 };
        })).ToArray();

    private static long[] CuSeqlens(IReadOnlyList<GridThw> grids)
    {
        var sizes = grids.SelectMany(g => Enumerable.Repeat((long)g.H * g.W, g.T));
        var cu = new List<long> { 0 };
        foreach (var s in sizes) cu.Add(cu[^1] + s);
        return cu.ToArray();
    }
}
