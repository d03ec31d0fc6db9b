using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Dsl;
using Qwen2VL.Model.Decoder;
using Qwen2VL.Tests.Dsl;
using Qwen2VL.Tests.Generator;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Distributed;

/// <summary>
/// The per-rank graph the sharding pass makes of the decoder layer computes the layer: run in float64 with the ops'
/// references (the collectives over 2 thread ranks of a <see cref="ReferenceGroup"/>), forward and then its backward steps
/// (the gradient table's rows, as the pass dump lists them), it gives the output, the input gradient and every
/// parameter gradient (the shards joined) of the whole layer's graph run the same way on one rank. Dims and consts come
/// from the tiny fixture's config (4 heads and 2 KV heads: 2 and 1 per rank); weights and inputs are seeded random.
/// This checks the pass and its backward collectives numerically; no generated kernel runs this graph yet.
/// </summary>
public sealed class ShardedGraphParityTests(ITestOutputHelper output)
{
    private sealed record DumpNode(int Id, string Kind, string Op, int[] Inputs, string[] Attrs, string[] Shape);
    private sealed record DumpStep(int Id, string Op, string Rows);
    private sealed record Program(Dictionary<string, string> Dims, List<DumpNode> Nodes, int Output, List<DumpStep> Steps);

    private static Program Parse(string dump)
    {
        var lines = dump.Split('\n');
        var dims = new Dictionary<string, string>();
        var nodes = new List<DumpNode>();
        var steps = new List<DumpStep>();
        var output = -1;
        var section = "";
        foreach (var line in lines)
        {
            if (!line.StartsWith("  ")) { section = line.Trim(); continue; }
            if (section == "dims" && Regex.Match(line, @"^  (\w+): (.*)$") is { Success: true } d)
                dims[d.Groups[1].Value] = d.Groups[2].Value;
            else if (section == "graph" && Regex.Match(line, @"^  %(\d+) = (\w+) (\w+)\(([^)]*)\)(?: \{([^}]*)\})? : \[([^\]]*)\]") is { Success: true } n)
                nodes.Add(new DumpNode(int.Parse(n.Groups[1].Value), n.Groups[2].Value, n.Groups[3].Value,
                    n.Groups[4].Value.Split(", ", StringSplitOptions.RemoveEmptyEntries).Select(i => int.Parse(i.TrimStart('%'))).ToArray(),
                    n.Groups[5].Value.Split(", ", StringSplitOptions.RemoveEmptyEntries), n.Groups[6].Value.Split(", ")));
            else if (section == "graph" && Regex.Match(line, @"^  return %(\d+)") is { Success: true } r)
                output = int.Parse(r.Groups[1].Value);
            else if (section == "backward" && Regex.Match(line, @"^  %(\d+) (\w+): (.*?)   reads") is { Success: true } s)
                steps.Add(new DumpStep(int.Parse(s.Groups[1].Value), s.Groups[2].Value, s.Groups[3].Value));
        }
        return new Program(dims, nodes, output, steps);
    }

    /// <summary>Integer value of a dim expression of the dump ("Hidden*KvHeads/(Heads*Tp)"), divisions exact.</summary>
    private static long Eval(string text, IReadOnlyDictionary<string, long> dims)
    {
        var expr = SyntaxFactory.ParseExpression(text);
        long Go(ExpressionSyntax e) => e switch
        {
            ParenthesizedExpressionSyntax p => Go(p.Expression),
            LiteralExpressionSyntax l => Convert.ToInt64(l.Token.Value, CultureInfo.InvariantCulture),
            IdentifierNameSyntax i => dims[i.Identifier.Text],
            BinaryExpressionSyntax b => b.OperatorToken.Text switch
            {
                "+" => Go(b.Left) + Go(b.Right),
                "-" => Go(b.Left) - Go(b.Right),
                "*" => Go(b.Left) * Go(b.Right),
                "/" => Go(b.Left) % Go(b.Right) == 0 ? Go(b.Left) / Go(b.Right) : throw new InvalidOperationException($"{b} does not divide"),
                _ => throw new InvalidOperationException(b.ToString()),
            },
            _ => throw new InvalidOperationException(e.ToString()),
        };
        return Go(expr);
    }

    private static Tensor Rand(Random rng, int[] shape)
    {
        var data = new double[Tensor.Product(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = (rng.NextDouble() * 2 - 1) * 0.5;
        return Tensor.FromDouble(data, shape);
    }

    /// <summary>What one rank computes: forward values, the gradient of every value, keyed by node id.</summary>
    private sealed record RankRun(Dictionary<int, Tensor> Values, Dictionary<int, Tensor> Grads, Dictionary<string, long> Dims);

    private static MethodInfo OpMethod(string name) => typeof(Ops).GetMethod(name, BindingFlags.Public | BindingFlags.Static)
        ?? throw new InvalidOperationException("no op " + name);

    /// <summary>The program's dims: from the config, derived, from the inputs' shapes, and the degree.</summary>
    private static Dictionary<string, long> BindDims(Program program, Dictionary<string, long> config, Tensor[] inputs, int degree)
    {
        var dims = new Dictionary<string, long>();
        foreach (var (name, source) in program.Dims)
        {
            if (source.StartsWith("config ")) dims[name] = config[source.Substring(7).Split(' ')[0]];
            else if (source.StartsWith("= ")) dims[name] = Eval(source.Substring(2), dims);
            else if (source.StartsWith("tensor-parallel degree")) dims[name] = degree;
            else if (Regex.Match(source, @"^input (\d+) axis (\d+)$") is { Success: true } m)
                dims[name] = inputs[int.Parse(m.Groups[1].Value)].Shape[int.Parse(m.Groups[2].Value)];
        }
        return dims;
    }

    /// <summary>Runs a program on the calling rank: full weights sliced to this rank's shard by the per-rank shapes.</summary>
    private static RankRun Run(Program program, Dictionary<string, long> config, Dictionary<string, double> consts,
        Tensor[] inputs, Dictionary<string, Tensor> weights, Tensor dOut, int rank, int degree, IReadOnlyDictionary<string, int>? strided = null)
    {
        var dims = BindDims(program, config, inputs, degree);
        int[] ShapeOf(DumpNode n) => n.Shape.Select(s => (int)Eval(s, dims)).ToArray();
        object Scalar(string attr) => consts.TryGetValue(attr, out var c) ? (float)c
            : dims.TryGetValue(attr, out var d) ? (int)d
            : attr.EndsWith('f') ? float.Parse(attr.TrimEnd('f'), CultureInfo.InvariantCulture) : int.Parse(attr, CultureInfo.InvariantCulture);

        var nodes = program.Nodes.ToDictionary(n => n.Id);
        var values = new Dictionary<int, Tensor>();
        foreach (var node in program.Nodes)
        {
            var shape = ShapeOf(node);
            switch (node.Kind)
            {
                case "input":
                    values[node.Id] = inputs[int.Parse(node.Attrs[0])];
                    break;
                case "param":
                    values[node.Id] = Shard(weights[node.Attrs[0]], shape, rank, strided?.GetValueOrDefault(node.Attrs[0], 1) ?? 1);
                    break;
                default:
                {
                    var method = OpMethod(node.Op);
                    var ps = method.GetParameters();
                    var args = new object?[ps.Length];
                    int t = 0, a = 0;
                    for (int i = 0; i < ps.Length; i++)
                    {
                        if (ps[i].ParameterType == typeof(Tensor))
                            args[i] = t < node.Inputs.Length ? values[node.Inputs[t++]] : null;
                        else if (node.Op == "SplitHeads")
                            args[i] = shape[^2];
                        else if (node.Op == "Reshape")
                            args[i] = shape;
                        else
                        {
                            var value = Scalar(node.Attrs[a++]);
                            args[i] = ps[i].ParameterType == typeof(int) ? (object)Convert.ToInt32(value) : (float)Convert.ToDouble(value);
                        }
                    }
                    Tensor y;
                    try { y = (Tensor)method.Invoke(null, args)!; }
                    catch (ArgumentException e) { throw new InvalidOperationException($"%{node.Id} {node.Op}({string.Join(", ", args.Select(v => v?.GetType().Name ?? "null"))}): {e.Message}", e); }
                    Assert.Equal(shape, y.Shape);
                    values[node.Id] = y;
                    break;
                }
            }
        }

        // Backward: the steps in the dump's order; a view's gradient is its source's (same elements, source shape).
        var grads = new Dictionary<int, Tensor>();
        void Accumulate(int id, Tensor g)
        {
            var node = nodes[id];
            if (node.Op is "SplitHeads" or "MergeHeads" or "Reshape")
            {
                Accumulate(node.Inputs[0], new Tensor((int[])values[node.Inputs[0]].Shape.Clone(), g.Data));
                return;
            }
            grads[id] = grads.TryGetValue(id, out var old) ? new Tensor(old.Shape, old.Data.Select((v, i) => v + g.Data[i]).ToArray()) : g;
        }
        Accumulate(program.Output, dOut);
        foreach (var step in program.Steps)
        {
            var node = nodes[step.Id];
            if (!grads.TryGetValue(step.Id, out var dy))
                continue;
            var method = OpMethod(node.Op);
            var ps = method.GetParameters();
            var scope = new Dictionary<string, object> { ["y"] = values[node.Id], ["dy"] = dy };
            var tensorNames = new List<string>();
            int t = 0, a = 0;
            foreach (var p in ps)
            {
                if (p.ParameterType == typeof(Tensor))
                {
                    tensorNames.Add(p.Name!);
                    if (t < node.Inputs.Length) scope[p.Name!] = values[node.Inputs[t++]];
                }
                else if (a < node.Attrs.Length) scope[p.Name!] = Scalar(node.Attrs[a++]);
            }
            foreach (var row in step.Rows.Split("; "))
            {
                var assignment = (AssignmentExpressionSyntax)SyntaxFactory.ParseExpression(row);
                var operand = ((IdentifierNameSyntax)assignment.Left).Identifier.Text.Substring(1);
                var k = tensorNames.IndexOf(operand);
                if (k >= node.Inputs.Length || nodes[node.Inputs[k]].Kind == "input" && values[node.Inputs[k]].DType == DType.I64)
                    continue;
                var g = (Tensor)GradientTableTests.Evaluate(assignment.Right, scope);
                var target = values[node.Inputs[k]];
                // An operand broadcast over leading axes (Add/Mul's suffix b, as a row-parallel bias added after the sum)
                // gets its row's value summed over the repeats, as the training code does.
                var data = g.Count == target.Count ? g.Data
                    : g.Data.Select((v, i) => (v, i)).GroupBy(t => t.i % target.Count).OrderBy(t => t.Key).Select(t => t.Sum(u => u.v)).ToArray();
                Accumulate(node.Inputs[k], new Tensor((int[])target.Shape.Clone(), data));
            }
        }
        return new RankRun(values, grads, dims);
    }

    /// <summary>
    /// Rank r's block of <paramref name="full"/> along the one axis where the shapes differ (the whole tensor when none
    /// does). With <paramref name="parts"/> &gt; 1 the axis holds that many stacked tensors (a fused qkv: [q | k | v]) and
    /// the rank takes its block of each.
    /// </summary>
    private static Tensor Shard(Tensor full, int[] shape, int rank, int parts = 1)
    {
        var axis = Enumerable.Range(0, shape.Length).FirstOrDefault(i => shape[i] != full.Shape[i], -1);
        if (axis < 0) return full;
        int outer = Tensor.Product(full.Shape.AsSpan(0, axis)) * parts, inner = Tensor.Product(full.Shape.AsSpan(axis + 1));
        int whole = full.Shape[axis] / parts, part = shape[axis] / parts;
        var data = new double[Tensor.Product(shape)];
        for (int o = 0; o < outer; o++)
            Array.Copy(full.Data, (o * whole + rank * part) * inner, data, o * part * inner, part * inner);
        return new Tensor(shape, data);
    }

    /// <summary>The ranks' shards of a parameter gradient joined back (the inverse of <see cref="Shard"/>; replicated: rank 0's).</summary>
    private static Tensor Join(Tensor[] shards, int[] full, int parts = 1)
    {
        var axis = Enumerable.Range(0, full.Length).FirstOrDefault(i => shards[0].Shape[i] != full[i], -1);
        if (axis < 0) return shards[0];
        int outer = Tensor.Product(full.AsSpan(0, axis)) * parts, inner = Tensor.Product(full.AsSpan(axis + 1));
        int whole = full[axis] / parts, part = shards[0].Shape[axis] / parts;
        var data = new double[Tensor.Product(full)];
        for (int r = 0; r < shards.Length; r++)
            for (int o = 0; o < outer; o++)
                Array.Copy(shards[r].Data, o * part * inner, data, (o * whole + r * part) * inner, part * inner);
        return new Tensor(full, data);
    }

    private static double MaxDiff(Tensor a, Tensor b)
    {
        Assert.Equal(a.Shape, b.Shape);
        return a.Data.Select((v, i) => Math.Abs(v - b.Data[i])).DefaultIfEmpty(0).Max();
    }

    /// <summary>The tiny fixture's config, seeded inputs, weights and output gradient, and both programs.</summary>
    private static (Program Whole, Program PerRank, Dictionary<string, long> Config, Dictionary<string, double> Consts, Tensor[] Inputs,
        Dictionary<string, Tensor> Weights, Tensor DOut) Setup()
    {
        const int B = 2, S = 5;
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(GeneratorHarness.RepoRoot(), "tests/fixtures/qwen2vl-tiny/config.json")));
        var root = json.RootElement;
        var config = new Dictionary<string, long>
        {
            ["hidden_size"] = root.GetProperty("hidden_size").GetInt64(),
            ["num_attention_heads"] = root.GetProperty("num_attention_heads").GetInt64(),
            ["num_key_value_heads"] = root.GetProperty("num_key_value_heads").GetInt64(),
            ["intermediate_size"] = root.GetProperty("intermediate_size").GetInt64(),
        };
        var sections = root.GetProperty("rope_scaling").GetProperty("mrope_section").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        for (int i = 0; i < 3; i++) config[$"rope_scaling.mrope_section.{i}"] = sections[i];
        var consts = new Dictionary<string, double> { ["Eps"] = root.GetProperty("rms_norm_eps").GetDouble(), ["RopeTheta"] = root.GetProperty("rope_theta").GetDouble() };
        Assert.Equal(4, config["num_attention_heads"]);
        Assert.Equal(2, config["num_key_value_heads"]); // one KV head per rank: the GQA groups stay whole

        var whole = Parse(DecoderLayer.FusedGraph);
        var perRank = Parse(DecoderLayer.ShardedGraph);

        // Seeded weights at the layer's full shapes, and inputs: positions as M-RoPE's three rows, batch row 1 left-padded.
        var rng = new Random(2024);
        var x = Rand(rng, [B, S, (int)config["hidden_size"]]);
        var pos = Tensor.FromInt64(Enumerable.Range(0, 3 * B * S).Select(i => (long)((i % S) + i / (B * S))).ToArray(), 3, B, S);
        var mask = Tensor.FromInt64([1, 1, 1, 1, 1, 0, 1, 1, 1, 1], B, S);
        Tensor[] inputs = [x, pos, mask];
        var dims = BindDims(whole, config, inputs, 1);
        var weights = whole.Nodes.Where(n => n.Kind == "param")
            .ToDictionary(n => n.Attrs[0], n => Rand(rng, n.Shape.Select(s => (int)Eval(s, dims)).ToArray()));
        var dOut = Rand(rng, whole.Nodes.Single(n => n.Id == whole.Output).Shape.Select(s => (int)Eval(s, dims)).ToArray());
        return (whole, perRank, config, consts, inputs, weights, dOut);
    }

    [Fact]
    public void DecoderLayer_TwoRanks_GiveTheLayersOutputAndEveryGradient()
    {
        const int degree = 2;
        var (whole, perRank, config, consts, inputs, weights, dOut) = Setup();
        Assert.Equal(2, perRank.Nodes.Count(n => n.Op == "AllReduce"));
        var one = Run(whole, config, consts, inputs, weights, dOut, 0, 1);
        var ranks = ReferenceGroup.Run(degree, r => Run(perRank, config, consts, inputs, weights, dOut, r, degree));
        var worst = 0.0;
        void Check(string what, Tensor expected, Tensor actual)
        {
            var diff = MaxDiff(expected, actual);
            output.WriteLine($"{what}: max |diff| {diff:E2}");
            worst = Math.Max(worst, diff);
            Assert.True(diff <= 1e-10, $"{what}: max |diff| {diff:E2}");
        }
        for (int r = 0; r < degree; r++)
        {
            Check($"output (rank {r})", one.Values[whole.Output], ranks[r].Values[perRank.Output]);
            Check($"dx (rank {r})", one.Grads[0], ranks[r].Grads[0]);
        }
        foreach (var param in whole.Nodes.Where(n => n.Kind == "param"))
        {
            var mine = perRank.Nodes.Single(n => n.Kind == "param" && n.Attrs[0] == param.Attrs[0]);
            var shards = ranks.Select(run => run.Grads[mine.Id]).ToArray();
            var full = one.Grads[param.Id];
            if (shards[0].Shape.SequenceEqual(full.Shape))
                Check($"grad {param.Attrs[0]} (replicated, rank 1)", full, shards[1]);
            Check($"grad {param.Attrs[0]}", full, Join(shards, full.Shape));
        }
        output.WriteLine($"worst |diff| {worst:E2} over the output, dx and {weights.Count} parameter gradients");
    }

    [Fact]
    public void WithoutTheAllReduceOfTheInputGradient_dxIsWrong()
    {
        // The same per-rank graph with f's backward row replaced by the identity (no all-reduce at the column-parallel
        // entries): each rank's dx then misses the other rank's heads and MLP columns. The parity test can fail.
        var (whole, perRank, config, consts, inputs, weights, dOut) = Setup();
        var broken = perRank with { Steps = perRank.Steps.Select(st => st.Op == "ParallelCopy" ? st with { Rows = "dx = dy" } : st).ToList() };
        Assert.Equal(2, broken.Steps.Count(st => st.Op == "ParallelCopy"));
        var one = Run(whole, config, consts, inputs, weights, dOut, 0, 1);
        var ranks = ReferenceGroup.Run(2, r => Run(broken, config, consts, inputs, weights, dOut, r, 2));
        Assert.True(MaxDiff(one.Grads[0], ranks[0].Grads[0]) > 1e-3);
        Assert.True(MaxDiff(one.Values[whole.Output], ranks[0].Values[perRank.Output]) < 1e-10); // the forward is untouched
    }

    [Fact]
    public void VisionBlock_TwoRanks_GiveTheBlocksOutputAndEveryGradient()
    {
        // The tiny fixture's vision config: embed 32, 2 heads (1 per rank), MLP ratio 4; two images of 3 and 4 patches.
        const int degree = 2, N = 7;
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(GeneratorHarness.RepoRoot(), "tests/fixtures/qwen2vl-tiny/config.json")));
        var vision = json.RootElement.GetProperty("vision_config");
        var config = new Dictionary<string, long>
        {
            ["vision_config.embed_dim"] = vision.GetProperty("embed_dim").GetInt64(),
            ["vision_config.num_heads"] = vision.GetProperty("num_heads").GetInt64(),
            ["vision_config.mlp_ratio"] = vision.GetProperty("mlp_ratio").GetInt64(),
        };
        var whole = Parse(Qwen2VL.Model.Vision.VisionBlock.FusedGraph);
        var perRank = Parse(Qwen2VL.Model.Vision.VisionBlock.ShardedGraph);
        var rng = new Random(7);
        Tensor[] inputs = [Rand(rng, [N, (int)config["vision_config.embed_dim"]]),
            Tensor.FromInt64([0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1], N, 2), Tensor.FromInt64([0, 3, 7], 3)];
        var dims = BindDims(whole, config, inputs, 1);
        var weights = whole.Nodes.Where(n => n.Kind == "param")
            .ToDictionary(n => n.Attrs[0], n => Rand(rng, n.Shape.Select(s => (int)Eval(s, dims)).ToArray()));
        var dOut = Rand(rng, [N, (int)config["vision_config.embed_dim"]]);
        // The fused qkv's rows are [q | k | v]; the pass splits it by whole heads of each (its Reshape to [N, 3, Heads/Tp,
        // HeadDim]), so a rank's rows are a strided slice: its heads of q, of k and of v. A loader must slice it so.
        Assert.Contains(perRank.Nodes, n => n.Op == "Reshape" && n.Shape.SequenceEqual(new[] { "N", "3", "Heads/Tp", "HeadDim" }));
        var strided = new Dictionary<string, int> { ["attn.qkv.weight"] = 3, ["attn.qkv.bias"] = 3 };
        var consts = new Dictionary<string, double>();

        var one = Run(whole, config, consts, inputs, weights, dOut, 0, 1);
        var ranks = ReferenceGroup.Run(degree, r => Run(perRank, config, consts, inputs, weights, dOut, r, degree, strided));
        var worst = 0.0;
        void Check(string what, Tensor expected, Tensor actual)
        {
            var diff = MaxDiff(expected, actual);
            worst = Math.Max(worst, diff);
            Assert.True(diff <= 1e-10, $"{what}: max |diff| {diff:E2}");
        }
        for (int r = 0; r < degree; r++)
        {
            Check($"output (rank {r})", one.Values[whole.Output], ranks[r].Values[perRank.Output]);
            Check($"dx (rank {r})", one.Grads[0], ranks[r].Grads[0]);
        }
        foreach (var param in whole.Nodes.Where(n => n.Kind == "param"))
        {
            var mine = perRank.Nodes.Single(n => n.Kind == "param" && n.Attrs[0] == param.Attrs[0]);
            var full = one.Grads[param.Id];
            Check($"grad {param.Attrs[0]}", full, Join(ranks.Select(run => run.Grads[mine.Id]).ToArray(), full.Shape, strided.GetValueOrDefault(param.Attrs[0], 1)));
        }
        output.WriteLine($"vision block: worst |diff| {worst:E2} over the output, dx and {weights.Count} parameter gradients");
    }
}
