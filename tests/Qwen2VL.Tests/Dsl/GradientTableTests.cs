using System.Reflection;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Qwen2VL.Dsl;
using Xunit;
using Xunit.Abstractions;

namespace Qwen2VL.Tests.Dsl;

/// <summary>
/// The gradient table is right: every op's Grad row, evaluated in float64 with the ops' references (the backward ops
/// included: SoftmaxBackward, RmsNormBackward, AttentionBackwardQ, …), gives the vector-Jacobian product that central
/// differences of the op's forward reference give, for every float operand. A new op with a Grad row and no sample here
/// fails the coverage test.
/// </summary>
public sealed class GradientTableTests(ITestOutputHelper output)
{
    private static Tensor Rand(Random rng, params int[] shape)
    {
        var data = new double[Tensor.Product(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = rng.NextDouble() * 2 - 1;
        return Tensor.FromDouble(data, shape);
    }

    private static Tensor Ints(long[] values, params int[] shape) => Tensor.FromInt64(values, shape);

    /// <summary>Arguments for each op with a gradient row, in parameter order (tensors, floats, ints, int arrays).</summary>
    private static readonly Dictionary<string, Func<Random, object[]>> Samples = new()
    {
        ["Add"] = r => [Rand(r, 3, 4), Rand(r, 3, 4)],
        ["Mul"] = r => [Rand(r, 3, 4), Rand(r, 3, 4)],
        ["Scale"] = r => [Rand(r, 3, 4), 0.7f],
        ["QuickGelu"] = r => [Rand(r, 3, 4)],
        ["Gelu"] = r => [Rand(r, 3, 4)],
        ["Silu"] = r => [Rand(r, 3, 4)],
        ["Sigmoid"] = r => [Rand(r, 3, 4)],
        ["Linear"] = r => [Rand(r, 2, 3, 4), Rand(r, 5, 4), Rand(r, 5)],
        ["LayerNorm"] = r => [Rand(r, 3, 6), Rand(r, 6), Rand(r, 6), 1e-5f],
        ["RmsNorm"] = r => [Rand(r, 3, 6), Rand(r, 6), 1e-5f],
        ["Softmax"] = r => [Rand(r, 3, 5)],
        ["VisionRotary"] = r => [Rand(r, 4, 2, 8), Ints([0, 0, 0, 1, 1, 0, 2, 3], 4, 2), 100f],
        ["MRope"] = r => [Rand(r, 1, 3, 2, 8), Ints([0, 1, 2, 0, 0, 1, 0, 1, 1], 3, 1, 3), 100f, 2, 1, 1],
        ["Attention"] = r => [Rand(r, 5, 2, 4), Rand(r, 5, 2, 4), Rand(r, 5, 2, 4), Ints([0, 2, 5], 3)],
        // Batch row 1 is left-padded: its first query sees no key (the uniform-mean case).
        ["CausalAttention"] = r => [Rand(r, 2, 3, 4, 4), Rand(r, 2, 3, 2, 4), Rand(r, 2, 3, 2, 4), Ints([1, 1, 1, 0, 1, 1], 2, 3)],
        ["Reshape"] = r => [Rand(r, 3, 4), new[] { 2, 6 }],
        ["Transpose"] = r => [Rand(r, 2, 3, 4), 0, 2],
        ["Select"] = r => [Rand(r, 2, 3, 4), 1, 2],
        ["Concat"] = r => [Rand(r, 2, 3), Rand(r, 2, 4), 1],
        ["SplitHeads"] = r => [Rand(r, 3, 8), 2],
        ["MergeHeads"] = r => [Rand(r, 3, 2, 4)],
        ["Embedding"] = r => [Ints([1, 0, 1, 2], 4), Rand(r, 3, 5)],
        // Collectives at degree 1 (no ReferenceGroup: every one is the identity); CollectiveOpTests checks their rows on 2 and 3 ranks.
        ["ParallelCopy"] = r => [Rand(r, 3, 4)],
        ["AllReduce"] = r => [Rand(r, 3, 4)],
        ["AllGather"] = r => [Rand(r, 3, 4), 1],
        ["ReduceScatter"] = r => [Rand(r, 3, 4), 1],
    };

    private static IEnumerable<(MethodInfo Method, string Grad)> OpsWithRows() =>
        typeof(Ops).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Select(m => (Method: m, Attr: m.GetCustomAttribute<OpAttribute>()))
            .Where(x => x.Attr?.Grad is not null)
            .Select(x => (x.Method, x.Attr!.Grad!));

    [Fact]
    public void EveryOpWithAGradientRow_HasASampleHere()
    {
        var missing = OpsWithRows().Select(o => o.Method.Name).Where(n => !Samples.ContainsKey(n)).ToList();
        Assert.True(missing.Count == 0, "no gradient sample for: " + string.Join(", ", missing));
    }

    public static IEnumerable<object[]> Names() => Samples.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(Names))]
    public void TheRowGivesTheVectorJacobianProductOfTheReference(string name)
    {
        var (method, grad) = OpsWithRows().Single(o => o.Method.Name == name);
        var rng = new Random(name.GetHashCode(StringComparison.Ordinal) & 0xffff);
        var args = Samples[name](rng);
        var parameters = method.GetParameters();
        var y = (Tensor)method.Invoke(null, args)!;
        var dy = Rand(rng, y.Shape);

        var rows = grad.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(r => (AssignmentExpressionSyntax)SyntaxFactory.ParseExpression(r))
            .ToDictionary(a => ((IdentifierNameSyntax)a.Left).Identifier.Text.Substring(1), a => a.Right);
        var scope = new Dictionary<string, object> { ["y"] = y, ["dy"] = dy };
        for (int i = 0; i < parameters.Length; i++)
            scope[parameters[i].Name!] = args[i];

        var checkedOperands = 0;
        for (int i = 0; i < parameters.Length; i++)
        {
            if (args[i] is not Tensor x || x.DType == DType.I64)
                continue;
            Assert.True(rows.ContainsKey(parameters[i].Name!), $"{name}: no row for d{parameters[i].Name}");
            var analytic = AsTensor(Evaluate(rows[parameters[i].Name!], scope));
            Assert.Equal(x.Count, analytic.Count);

            // Central differences of Σ f(…, x + εu, …)·dy along a random direction u.
            var u = Rand(rng, x.Shape);
            const double eps = 1e-6;
            double Loss(double step)
            {
                var moved = (object[])args.Clone();
                moved[i] = new Tensor((int[])x.Shape.Clone(), x.Data.Select((v, j) => v + step * u.Data[j]).ToArray());
                var yy = (Tensor)method.Invoke(null, moved)!;
                return yy.Data.Select((v, j) => v * dy.Data[j]).Sum();
            }
            var numeric = (Loss(eps) - Loss(-eps)) / (2 * eps);
            var vjp = analytic.Data.Select((v, j) => v * u.Data[j]).Sum();
            output.WriteLine($"{name} d{parameters[i].Name}: row {vjp:G12}, differences {numeric:G12}");
            Assert.True(Math.Abs(vjp - numeric) <= 1e-7 * Math.Max(1, Math.Abs(numeric)),
                $"{name} d{parameters[i].Name} = {rows[parameters[i].Name!]}: <row, u> = {vjp:G12}, central differences {numeric:G12}, diff {Math.Abs(vjp - numeric):E2}");
            checkedOperands++;
        }
        Assert.True(checkedOperands > 0, $"{name}: no float operand to check");
    }

    /// <summary>A value of a row: a tensor, or a scalar (a literal or a scalar argument).</summary>
    internal static object Evaluate(ExpressionSyntax e, Dictionary<string, object> scope)
    {
        switch (e)
        {
            case ParenthesizedExpressionSyntax p:
                return Evaluate(p.Expression, scope);
            case IdentifierNameSyntax n:
                return scope[n.Identifier.Text];
            case LiteralExpressionSyntax l:
                return Convert.ToDouble(l.Token.Value, System.Globalization.CultureInfo.InvariantCulture);
            case PrefixUnaryExpressionSyntax { OperatorToken.Text: "-" } u:
                return Map(Evaluate(u.Operand, scope), v => -v);
            case BinaryExpressionSyntax b:
                var left = Evaluate(b.Left, scope);
                var right = Evaluate(b.Right, scope);
                Func<double, double, double> f = b.OperatorToken.Text switch
                {
                    "+" => (p, q) => p + q,
                    "-" => (p, q) => p - q,
                    "*" => (p, q) => p * q,
                    "/" => (p, q) => p / q,
                    var other => throw new InvalidOperationException("operator " + other),
                };
                return Zip(left, right, f);
            case InvocationExpressionSyntax { Expression: IdentifierNameSyntax function } call:
                var values = call.ArgumentList.Arguments.Select(a => Evaluate(a.Expression, scope)).ToArray();
                switch (function.Identifier.Text)
                {
                    case "Exp": return Map(values[0], Math.Exp);
                    case "Erf": return Map(values[0], SpecialFunctions.Erf);
                    case "Sqrt": return Map(values[0], Math.Sqrt);
                    case "Tanh": return Map(values[0], Math.Tanh);
                }
                var op = typeof(Ops).GetMethod(function.Identifier.Text, BindingFlags.Public | BindingFlags.Static)
                    ?? throw new InvalidOperationException($"no op {function.Identifier.Text}");
                var ps = op.GetParameters();
                var converted = values.Select((v, k) => ps[k].ParameterType == typeof(float) ? (float)Convert.ToDouble(v)
                    : ps[k].ParameterType == typeof(int) ? Convert.ToInt32(v) : v).ToArray();
                return op.Invoke(null, converted)!;
        }
        throw new InvalidOperationException("not a row expression: " + e);
    }

    private static object Map(object value, Func<double, double> f) =>
        value is Tensor t ? new Tensor((int[])t.Shape.Clone(), t.Data.Select(f).ToArray()) : f(Convert.ToDouble(value));

    private static object Zip(object a, object b, Func<double, double, double> f)
    {
        if (a is Tensor ta && b is Tensor tb)
        {
            Assert.Equal(ta.Count, tb.Count);
            return new Tensor((int[])ta.Shape.Clone(), ta.Data.Select((v, i) => f(v, tb.Data[i])).ToArray());
        }
        if (a is Tensor t1)
            return Map(t1, v => f(v, Convert.ToDouble(b)));
        if (b is Tensor t2)
            return Map(t2, v => f(Convert.ToDouble(a), v));
        return f(Convert.ToDouble(a), Convert.ToDouble(b));
    }

    /// <summary>A row's value as a tensor (a view's row "dx = dy" keeps dy's elements under x's shape; the count is checked).</summary>
    private static Tensor AsTensor(object value) => value as Tensor ?? throw new InvalidOperationException("a row must give a tensor");
}
