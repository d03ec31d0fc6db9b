using System.Text.RegularExpressions;
using Xunit;

namespace Qwen2VL.Tests.Generator;

/// <summary>
/// The sharding pass turns a module's graph into the graph one tensor-parallel rank runs, from the shard plan on its
/// params (Megatron's column/row-parallel layers). Read from the per-rank pass dump (ShardedGraph) of the model's decoder
/// layer and vision block: where the collectives go, the per-rank shapes, and the backward collectives autodiff gives.
/// </summary>
public sealed class ShardingPassTests
{
    private sealed record DumpNode(int Id, string Op, List<int> Inputs, string Shape);

    private static (List<DumpNode> Graph, List<string> Backward) PerRank(string module, string path)
    {
        var result = GeneratorHarness.Run(GeneratorHarness.RepoSource(path));
        Assert.Empty(result.Diagnostics);
        var dump = result.Files.Single(f => f.Key.EndsWith(module + ".Sharded.g.cs")).Value;
        var graph = new List<DumpNode>();
        foreach (var line in dump.Split('\n'))
            if (Regex.Match(line, @"^  %(\d+) = \w+ (\w+)\(([^)]*)\)(?: \{[^}]*\})? : (\[[^\]]*\])") is { Success: true } m)
                graph.Add(new DumpNode(int.Parse(m.Groups[1].Value), m.Groups[2].Value,
                    m.Groups[3].Value.Split(", ", StringSplitOptions.RemoveEmptyEntries).Select(i => int.Parse(i.TrimStart('%'))).ToList(), m.Groups[4].Value));
        var backward = dump.Split('\n').SkipWhile(l => l != "backward").Skip(1).TakeWhile(l => l.StartsWith("  %")).Select(l => l.Trim()).ToList();
        return (graph, backward);
    }

    [Fact]
    public void DecoderLayer_ColumnParallelQkvAndGateUp_RowParallelOAndDown_OneAllReduceAfterEach()
    {
        var (graph, backward) = PerRank("DecoderLayer", "models/qwen2vl/Decoder/DecoderLayer.cs");
        DumpNode Param(string field) => graph.Single(n => n.Op == field);
        DumpNode UserOf(DumpNode weight) => graph.Single(n => n.Op == "Linear" && n.Inputs[1] == weight.Id);

        // Each rank holds its shard: whole query heads and whole KV heads, 1/Tp of the MLP.
        Assert.Equal("[Hidden/Tp, Hidden]", Param("QW").Shape);
        Assert.Equal("[Hidden/Tp]", Param("QB").Shape);
        Assert.Equal("[Hidden*KvHeads/(Heads*Tp), Hidden]", Param("KW").Shape);
        Assert.Equal("[Hidden, Hidden/Tp]", Param("OW").Shape);
        Assert.Equal("[Intermediate/Tp, Hidden]", Param("GateW").Shape);
        Assert.Equal("[Hidden, Intermediate/Tp]", Param("DownW").Shape);
        Assert.Equal("[Hidden]", Param("InputNormW").Shape); // replicated
        Assert.Contains(graph, n => n.Op == "SplitHeads" && n.Shape == "[B, S, Heads/Tp, HeadDim]");
        Assert.Contains(graph, n => n.Op == "SplitHeads" && n.Shape == "[B, S, KvHeads/Tp, HeadDim]");
        Assert.Contains(graph, n => n.Op == "CausalAttention" && n.Shape == "[B, S, Heads/Tp, HeadDim]");

        // f: q, k and v read one ParallelCopy of the normed input; gate and up another.
        var copies = graph.Where(n => n.Op == "ParallelCopy").ToList();
        Assert.Equal(2, copies.Count);
        Assert.All(new[] { "QW", "KW", "VW" }, w => Assert.Equal(copies[0].Id, UserOf(Param(w)).Inputs[0]));
        Assert.All(new[] { "GateW", "UpW" }, w => Assert.Equal(copies[1].Id, UserOf(Param(w)).Inputs[0]));
        Assert.All(copies, c => Assert.Equal("RmsNorm", graph.Single(n => n.Id == c.Inputs[0]).Op));

        // g: the row-parallel o_proj and down give partial sums, all-reduced before the residual add.
        foreach (var w in new[] { "OW", "DownW" })
        {
            var sum = graph.Single(n => n.Op == "AllReduce" && n.Inputs[0] == UserOf(Param(w)).Id);
            Assert.Equal("[B, S, Hidden]", sum.Shape);
            Assert.Contains(graph, n => n.Op == "Add" && n.Inputs.Contains(sum.Id));
        }
        Assert.Equal(2, graph.Count(n => n.Op == "AllReduce"));

        // Backward: the input gradient at each column-parallel entry is all-reduced; g's gradient passes through.
        Assert.Equal(2, backward.Count(l => Regex.IsMatch(l, @"^%\d+ ParallelCopy: dx = AllReduce\(dy\)")));
        Assert.Equal(2, backward.Count(l => Regex.IsMatch(l, @"^%\d+ AllReduce: dx = ParallelCopy\(dy\)")));
    }

    [Fact]
    public void VisionBlock_QkvSplitByWholeHeads_RowParallelBiasAddedAfterTheSum()
    {
        var (graph, _) = PerRank("VisionBlock", "models/qwen2vl/Vision/VisionBlock.cs");
        // The fused qkv output [N, 3·Embed/Tp] is viewed as [N, 3, Heads/Tp, HeadDim]: each rank keeps whole heads of q, k and v.
        Assert.Contains(graph, n => n.Op == "Reshape" && n.Shape == "[N, 3, Heads/Tp, HeadDim]");
        Assert.Contains(graph, n => n.Op == "Attention" && n.Shape == "[N, Heads/Tp, HeadDim]");
        foreach (var (w, b) in new[] { ("ProjW", "ProjB"), ("Fc2W", "Fc2B") })
        {
            var weight = graph.Single(n => n.Op == w);
            var bias = graph.Single(n => n.Op == b);
            var linear = graph.Single(n => n.Op == "Linear" && n.Inputs[1] == weight.Id);
            Assert.Equal(2, linear.Inputs.Count); // the bias is not in the partial product (it would be summed Tp times)
            var sum = graph.Single(n => n.Op == "AllReduce" && n.Inputs[0] == linear.Id);
            Assert.Contains(graph, n => n.Op == "Add" && n.Inputs.SequenceEqual(new[] { sum.Id, bias.Id }));
        }
    }

    [Fact]
    public void AModuleThatSplitsNothingHasNoPerRankGraph()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.RepoSource("tests/Qwen2VL.Tests/Generator/Samples/Gate.cs"));
        Assert.DoesNotContain(result.Files.Keys, k => k.EndsWith(".Sharded.g.cs"));
    }
}
