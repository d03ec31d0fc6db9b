using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>
/// A linear layer with its fused epilogue: bias, then the elementwise chain that followed it (activation, residual
/// add…), applied where the GEMM stores its result. Emits the epilogue as a struct for the runtime's GPU GEMM
/// (per element) and for the CPU GEMM (per finished row, vectorised).
/// </summary>
internal static class GemmLowering
{
    public static bool HasEpilogue(Graph graph, KernelGroup group) => group.Nodes.Count > 1 || graph[group.Nodes[0]].Inputs.Count > 2;

    /// <summary>The epilogue of a GEMM group in both forms, named by content.</summary>
    public static EpilogueSpec Epilogue(Graph graph, KernelGroup group)
    {
        var gpu = new CodeWriter();
        EmitGpu(gpu, graph, group);
        var cpu = new CodeWriter();
        EmitCpu(cpu, graph, group);
        return new EpilogueSpec(group.Name + "_Epilogue", Comment(graph, group).ToList(), Lines(gpu), Lines(cpu));
    }

    private static List<string> Lines(CodeWriter w) => w.ToString().TrimEnd('\n').Split('\n').ToList();

    /// <summary>The operands the epilogue reads: (host variable, is a row vector indexed by column only).</summary>
    public static List<(int Node, bool RowVector)> Operands(Graph graph, KernelGroup group)
    {
        var linear = graph[group.Nodes[0]];
        var result = new List<(int, bool)>();
        if (linear.Inputs.Count > 2)
            result.Add((linear.Inputs[2], true));
        var inside = new HashSet<int>(group.Nodes);
        foreach (var n in group.Nodes.Skip(1))
            foreach (var i in graph[n].Inputs)
                if (!inside.Contains(i) && !result.Any(r => r.Item1 == i))
                    result.Add((i, !graph[i].Shape.Equals(graph[group.Output].Shape)));
        return result;
    }

    /// <summary>Full-shape operands are indexed by row, which needs the row length.</summary>
    public static bool NeedsCols(List<(int Node, bool RowVector)> operands) => operands.Any(o => !o.RowVector);

    public static IEnumerable<string> Comment(Graph graph, KernelGroup group)
    {
        yield return $"{group.Name}: linear with fused epilogue";
        foreach (var n in group.Nodes)
            yield return "  " + EmitNames.Describe(graph, n);
    }

    private static void EmitGpu(CodeWriter w, Graph graph, KernelGroup group)
    {
        var operands = Operands(graph, group);
        w.Open($"public struct {EpilogueSpec.Placeholder} : IGemmEpilogue");
        for (var k = 0; k < operands.Count; k++)
            w.Line($"public ArrayView<float> In{k};");
        w.Line("public int Cols;");
        w.Line();
        w.Open("public float Apply(int row, int col, float acc)");
        foreach (var line in Body(graph, group, operands, FormulaTarget.Gpu, k => operands[k].RowVector ? $"In{k}[col]" : $"In{k}[row * Cols + col]", "acc"))
            w.Line(line);
        w.Close();
        w.Close();
    }

    private static void EmitCpu(CodeWriter w, Graph graph, KernelGroup group)
    {
        var operands = Operands(graph, group);
        var formulas = new OpFormulas(graph);
        var vectorizable = group.Nodes.Skip(1).All(n => FormulaEmitter.IsVectorizable(formulas.Of(graph[n]).Formula));
        var fields = string.Join(", ", Enumerable.Range(0, operands.Count).Select(k => $"DeviceTensor in{k}")
            .Concat(NeedsCols(operands) ? new[] { "int cols" } : new string[0]));
        w.Open($"public readonly struct {EpilogueSpec.Placeholder}({fields}) : ICpuGemmEpilogue");
        w.Open("public void ApplyRow(int row, Span<float> c)");
        for (var k = 0; k < operands.Count; k++)
            w.Line($"ReadOnlySpan<float> row{k} = in{k}.Span{(operands[k].RowVector ? "" : ".Slice(row * cols, cols)")};");
        w.Line("int j = 0;");
        if (vectorizable)
        {
            w.Open("for (; j <= c.Length - Vector<float>.Count; j += Vector<float>.Count)");
            w.Line("var acc = new Vector<float>(c.Slice(j));");
            for (var k = 0; k < operands.Count; k++)
                w.Line($"var in{k}Value = new Vector<float>(row{k}.Slice(j));");
            foreach (var line in Body(graph, group, operands, FormulaTarget.CpuVector, k => $"in{k}Value", "acc", vector: true))
                w.Line(line.StartsWith("return ") ? line.Substring(7).TrimEnd(';') + ".CopyTo(c.Slice(j));" : line);
            w.Close();
        }
        w.Open("for (; j < c.Length; j++)");
        w.Line("float acc = c[j];");
        foreach (var line in Body(graph, group, operands, FormulaTarget.CpuScalar, k => $"row{k}[j]", "acc"))
            w.Line(line.StartsWith("return ") ? "c[j] = " + line.Substring(7) : line);
        w.Close();
        w.Close();
        w.Close();
    }

    /// <summary>Statements computing the epilogue from the accumulator; the last one returns the result.</summary>
    private static IEnumerable<string> Body(Graph graph, KernelGroup group, List<(int Node, bool RowVector)> operands,
        FormulaTarget target, System.Func<int, string> load, string acc, bool vector = false)
    {
        var formulas = new OpFormulas(graph);
        var linear = graph[group.Nodes[0]];
        var current = acc;
        var decl = vector ? "var" : "float";
        if (linear.Inputs.Count > 2)
        {
            yield return $"{decl} v{linear.Id} = {acc} + {load(0)};";
            current = "v" + linear.Id;
        }
        foreach (var n in group.Nodes.Skip(1))
        {
            var args = graph[n].Inputs.Select(i =>
                i == group.Nodes[group.Nodes.ToList().IndexOf(n) - 1] ? current : load(operands.FindIndex(o => o.Node == i))).ToList();
            yield return $"{decl} v{n} = {GroupLowering.Formula(graph, formulas, n, args, target)};";
            current = "v" + n;
        }
        yield return $"return {current};";
    }
}

/// <summary>A GEMM epilogue struct in both forms; like a <see cref="KernelSpec"/>, named by its normalised content.</summary>
internal sealed class EpilogueSpec(string useName, List<string> comment, List<string> gpu, List<string> cpu)
{
    /// <summary>Stands for the struct's name in the lines until the name (a hash of the lines) is known.</summary>
    public const string Placeholder = "__EPILOGUE__";

    public string UseName { get; } = useName;
    public List<string> Comment { get; } = comment;

    public string Name
    {
        get
        {
            var parts = KernelIdentity.Normalise(gpu, cpu);
            return KernelIdentity.Name(KernelIdentity.Stem(UseName), string.Join("\n", parts[0]) + "\n--\n" + string.Join("\n", parts[1]));
        }
    }

    public (List<string> Gpu, List<string> Cpu) Normalised
    {
        get
        {
            var name = Name;
            var parts = KernelIdentity.Normalise(gpu, cpu);
            return (parts[0].Select(l => l.Replace(Placeholder, name)).ToList(), parts[1].Select(l => l.Replace(Placeholder, name)).ToList());
        }
    }
}
