using Qwen2VL.Dsl;
using Xunit;

namespace Qwen2VL.Tests.Dsl;

[Module]
public partial class Leaf
{
    [Dim("cfg.embed")] public int Embed;
    [Dim("cfg.heads", Default = 2)] public int Heads;
    [Dim] public int HeadDim => Embed / Heads;
    [Param("w", "3*Embed", "HeadDim")] public Tensor W = null!;
    [Param("b", "(Embed+2)/2", "2")] public Tensor B = null!;

    public Tensor Forward([Shape("T", "HeadDim")] Tensor x) { return Ops.Linear(x, W); }
}

[Module]
public partial class Parent
{
    [Dim("cfg.depth")] public int Depth;
    [Dim("cfg.list.1")] public int Second;
    [Dim("cfg.embed")] public int Embed;
    [Dim("cfg.heads", Default = 2)] public int Heads;
    [Submodule("layers", Count = "Depth")] public Leaf[] Layers = null!;
    [Submodule("head")] public Leaf Head = null!;

    public Tensor Forward([Shape("T", "Embed/Heads")] Tensor x) { return Head.Forward(x); }
}

public class ModuleBinderTests
{
    private static Func<string, double?> Config(Dictionary<string, double> c) => k => c.TryGetValue(k, out var v) ? v : null;

    private static Func<string, (int[] Shape, double[] Data)?> Weights(Dictionary<string, int[]> shapes) =>
        name => shapes.TryGetValue(name, out var s) ? (s, Enumerable.Range(0, Tensor.Product(s)).Select(i => (double)i).ToArray()) : null;

    private static Dictionary<string, int[]> LeafShapes(string prefix) => new()
    {
        [prefix + "w"] = [12, 2],
        [prefix + "b"] = [3, 2],
    };

    [Fact]
    public void Bind_SetsDimsLoadsParamsAndCreatesChildren()
    {
        var shapes = new[] { "top.layers.0.", "top.layers.1.", "top.head." }.SelectMany(p => LeafShapes(p))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        var m = ModuleBinder.Create<Parent>(Config(new() { ["cfg.embed"] = 4, ["cfg.depth"] = 2, ["cfg.list.1"] = 7 }),
            Weights(shapes), "top.");
        Assert.Equal(2, m.Depth);
        Assert.Equal(7, m.Second);
        Assert.Equal(2, m.Layers.Length);
        Assert.Equal(4, m.Layers[1].Embed);
        Assert.Equal(2, m.Layers[1].Heads);      // default
        Assert.Equal(2, m.Layers[1].HeadDim);    // derived, not bound
        Assert.Equal([12, 2], m.Head.W.Shape);
        Assert.Equal(5.0, m.Head.B.Data[5]);
    }

    [Fact]
    public void Bind_MissingConfigKeyWithoutDefault_NamesTheKey()
    {
        var e = Assert.Throws<ModuleBindingException>(() =>
            ModuleBinder.Create<Leaf>(Config(new()), Weights(LeafShapes("")), ""));
        Assert.Contains("cfg.embed", e.Message);
    }

    [Fact]
    public void Bind_NonIntegerDim_IsRejected()
    {
        var e = Assert.Throws<ModuleBindingException>(() =>
            ModuleBinder.Create<Leaf>(Config(new() { ["cfg.embed"] = 4.5 }), Weights(LeafShapes("")), ""));
        Assert.Contains("cfg.embed", e.Message);
    }

    [Fact]
    public void Bind_ShapeMismatch_NamesTensorExpectedAndActual()
    {
        var shapes = LeafShapes("x.");
        shapes["x.w"] = [12, 3];
        var e = Assert.Throws<ModuleBindingException>(() =>
            ModuleBinder.Create<Leaf>(Config(new() { ["cfg.embed"] = 4 }), Weights(shapes), "x."));
        Assert.Contains("x.w", e.Message);
        Assert.Contains("[12, 3]", e.Message);
        Assert.Contains("[12, 2]", e.Message);
    }

    [Fact]
    public void Bind_MissingTensor_NamesIt()
    {
        var shapes = LeafShapes("x.");
        shapes.Remove("x.b");
        var e = Assert.Throws<ModuleBindingException>(() =>
            ModuleBinder.Create<Leaf>(Config(new() { ["cfg.embed"] = 4 }), Weights(shapes), "x."));
        Assert.Contains("x.b", e.Message);
    }

    [Theory]
    [InlineData("3*Embed", 24)]
    [InlineData("Embed/Heads", 4)]
    [InlineData("Embed - Heads * 2", 4)]
    [InlineData("(Embed + 4) / 3", 4)]
    [InlineData("16", 16)]
    public void DimExpression_Evaluates(string expr, int expected) =>
        Assert.Equal(expected, DimExpression.Evaluate(expr, n => n switch { "Embed" => 8, "Heads" => 2, _ => null }));

    [Theory]
    [InlineData("Missing")]
    [InlineData("3*")]
    [InlineData("(1")]
    [InlineData("2 $ 3")]
    public void DimExpression_RejectsBadText(string expr) =>
        Assert.Throws<FormatException>(() => DimExpression.Evaluate(expr, _ => null));
}
