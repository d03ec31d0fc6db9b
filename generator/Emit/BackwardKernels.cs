using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>
/// The generated backward kernels, one per (op, operand) in both forms: elementwise gradients from the op's Grad
/// formula, norm and softmax row kernels, the inverse rotation, and the scatters of the movement ops.
/// </summary>
internal static class BackwardKernels
{
    /// <summary>
    /// d(operand) from an elementwise op's gradient table row (<c>da = dy * b</c>): the row's formula, with the operands
    /// it reads as the kernel's inputs. Accumulates into <paramref name="destination"/>, or overwrites it when it is a
    /// full-size scratch for a broadcast operand.
    /// </summary>
    public static KernelSpec Elementwise(Graph graph, OpInfo op, Node node, GradAssign rule, string destination, string dy, bool overwrite)
    {
        var tensorNames = op.Parameters.Where(p => p.Kind is "Tensor" or "OptionalTensor").Select(p => p.Name).ToList();
        var scalarNames = op.Parameters.Where(p => p.Kind is "Float" or "Int").Select(p => p.Name).ToList();
        var target = rule.Operand;
        var formula = rule.Text;
        var names = new HashSet<string>(Passes.Autodiff.Names(rule.Value));
        var reads = Enumerable.Range(0, node.Inputs.Count).Where(k => k < tensorNames.Count && names.Contains(tensorNames[k])).ToList();
        var spec = new KernelSpec($"B{node.Id}_{node.Op}_{target}",
            new[] { $"B{node.Id}_{node.Op}_{target}: gradient of {node.Op} (line {node.Line}) with respect to '{target}': d{target} {(overwrite ? "=" : "+=")} {formula}" },
            EmitNames.Size(graph, node.Id));
        spec.Params.Add(new KernelParam("grad", ParamKind.Tensor, destination));
        spec.Params.Add(new KernelParam("dy", ParamKind.Tensor, dy));
        var broadcast = new List<int>();
        foreach (var k in reads)
        {
            spec.Params.Add(new KernelParam("in" + k, ParamKind.Tensor, EmitNames.Var(graph, node.Inputs[k])));
            if (!graph[node.Inputs[k]].Shape.Equals(node.Shape))
                broadcast.Add(k);
        }
        foreach (var k in broadcast)
            spec.Params.Add(new KernelParam("in" + k + "Size", ParamKind.Int, EmitNames.Size(graph, node.Inputs[k])));
        spec.Params.Add(new KernelParam("size", ParamKind.Int, EmitNames.Size(graph, node.Id)));
        GroupLowering.ConstParams(graph, spec, new[] { node });

        string Lower(FormulaTarget t, System.Func<int, string> load, string dyValue)
        {
            var map = new Dictionary<string, string> { ["dy"] = dyValue };
            foreach (var k in reads)
                map[tensorNames[k]] = load(k);
            for (var k = 0; k < scalarNames.Count; k++)
                map[scalarNames[k]] = graph.IsConst(node.Attrs[k]) ? EmitNames.ConstParam(node.Attrs[k]) : node.Attrs[k];
            return FormulaEmitter.Lower(formula, map, t);
        }
        var assign = overwrite ? "=" : "+=";
        spec.GpuBody.Add($"grad[index] {assign} {Lower(FormulaTarget.Gpu, k => broadcast.Contains(k) ? $"in{k}[index % in{k}Size]" : $"in{k}[index]", "dy[index]")};");
        spec.CpuBody.AddRange(Chunked(new[]
        {
            $"g[i] {assign} {Lower(FormulaTarget.CpuScalar, k => broadcast.Contains(k) ? $"s{k}[i % in{k}Size]" : $"s{k}[i]", "d[i]")};",
        }, new[] { "var g = grad.Span;", "var d = dy.Span;" }.Concat(reads.Select(k => $"var s{k} = in{k}.Span;"))));
        return spec;
    }

    /// <summary>LayerNorm / RmsNorm backward for one row per thread: dx accumulated, dy·x̂ per row for the weight gradient.</summary>
    public static KernelSpec Norm(Graph graph, Node node, string dx, string weightRows, string dy)
    {
        var layer = node.Kind == OpKind.LayerNorm;
        var rows = EmitNames.Rows(graph, node.Id);
        var spec = new KernelSpec($"B{node.Id}_{node.Op}",
            new[] { $"B{node.Id}_{node.Op}: backward of {node.Op} (line {node.Line}): dx += …, rows of dy·x̂ for the weight gradient" }, rows);
        spec.Params.Add(new KernelParam("dx", ParamKind.Tensor, dx));
        spec.Params.Add(new KernelParam("dwRows", ParamKind.Tensor, weightRows));
        spec.Params.Add(new KernelParam("dy", ParamKind.Tensor, dy));
        spec.Params.Add(new KernelParam("x", ParamKind.Tensor, EmitNames.Var(graph, node.Inputs[0])));
        spec.Params.Add(new KernelParam("w", ParamKind.Tensor, EmitNames.Var(graph, node.Inputs[1])));
        spec.Params.Add(new KernelParam("rows", ParamKind.Int, rows));
        spec.Params.Add(new KernelParam("d", ParamKind.Int, EmitNames.Last(graph, node.Id)));
        spec.Params.Add(new KernelParam("eps", ParamKind.Float, node.Attrs[0]));
        var body = layer
            ? new[]
            {
                "int o = r * d;",
                "float mean = 0f; for (int j = 0; j < d; j++) mean += x[o + j]; mean /= d;",
                "float variance = 0f; for (int j = 0; j < d; j++) { float c = x[o + j] - mean; variance += c * c; } variance /= d;",
                "float rstd = 1f / SQRT(variance + eps);",
                "float sumG = 0f, sumGX = 0f;",
                "for (int j = 0; j < d; j++) { float xh = (x[o + j] - mean) * rstd; float gw = dy[o + j] * w[j]; sumG += gw; sumGX += gw * xh; dwRows[o + j] = dy[o + j] * xh; }",
                "sumG /= d; sumGX /= d;",
                "for (int j = 0; j < d; j++) { float xh = (x[o + j] - mean) * rstd; dx[o + j] += rstd * (dy[o + j] * w[j] - sumG - xh * sumGX); }",
            }
            : new[]
            {
                "int o = r * d;",
                "float squares = 0f; for (int j = 0; j < d; j++) squares += x[o + j] * x[o + j];",
                "float rstd = 1f / SQRT(squares / d + eps);",
                "float sumGX = 0f;",
                "for (int j = 0; j < d; j++) { sumGX += dy[o + j] * w[j] * x[o + j]; dwRows[o + j] = dy[o + j] * x[o + j] * rstd; }",
                "sumGX /= d;",
                "for (int j = 0; j < d; j++) dx[o + j] += rstd * dy[o + j] * w[j] - x[o + j] * rstd * rstd * rstd * sumGX;",
            };
        spec.GpuBody.Add("int r = index;");
        spec.GpuBody.AddRange(body.Select(l => l.Replace("SQRT", "XMath.Sqrt")));
        spec.CpuBody.Add("void Row(int r)");
        spec.CpuBody.Add("{");
        spec.CpuBody.Add("    var xs = x.Span; var dys = dy.Span; var ws = w.Span; var dxs = dx.Span; var dws = dwRows.Span;");
        // Rename the views to the spans ("dx[" becomes "dxs[" through the "x[" rule).
        spec.CpuBody.AddRange(body.Select(l => "    " + l.Replace("SQRT", "MathF.Sqrt").Replace("dwRows[", "dws[").Replace("x[", "xs[")
            .Replace("dy[", "dys[").Replace("w[", "ws[")));
        spec.CpuBody.Add("}");
        spec.CpuBody.Add("if ((long)rows * d < 65536) for (int r = 0; r < rows; r++) Row(r);");
        spec.CpuBody.Add("else Parallel.For(0, rows, Row);");
        return spec;
    }

    /// <summary>Softmax backward: dx += y·(dy − Σ dy·y) per row.</summary>
    public static KernelSpec Softmax(Graph graph, Node node, string dx, string dy)
    {
        var rows = EmitNames.Rows(graph, node.Id);
        var spec = new KernelSpec($"B{node.Id}_Softmax", new[] { $"B{node.Id}_Softmax: backward of Softmax (line {node.Line}): dx += y·(dy − Σ dy·y)" }, rows);
        spec.Params.Add(new KernelParam("dx", ParamKind.Tensor, dx));
        spec.Params.Add(new KernelParam("dy", ParamKind.Tensor, dy));
        spec.Params.Add(new KernelParam("y", ParamKind.Tensor, EmitNames.Var(graph, node.Id)));
        spec.Params.Add(new KernelParam("rows", ParamKind.Int, rows));
        spec.Params.Add(new KernelParam("d", ParamKind.Int, EmitNames.Last(graph, node.Id)));
        var body = new[]
        {
            "int o = r * d;",
            "float dot = 0f; for (int j = 0; j < d; j++) dot += DY[o + j] * Y[o + j];",
            "for (int j = 0; j < d; j++) DX[o + j] += Y[o + j] * (DY[o + j] - dot);",
        };
        spec.GpuBody.Add("int r = index;");
        spec.GpuBody.AddRange(body.Select(l => l.Replace("DY", "dy").Replace("DX", "dx").Replace("Y", "y")));
        spec.CpuBody.Add("void Row(int r)");
        spec.CpuBody.Add("{");
        spec.CpuBody.Add("    var ys = y.Span; var dys = dy.Span; var dxs = dx.Span;");
        spec.CpuBody.AddRange(body.Select(l => "    " + l.Replace("DY", "dys").Replace("DX", "dxs").Replace("Y", "ys")));
        spec.CpuBody.Add("}");
        spec.CpuBody.Add("if ((long)rows * d < 65536) for (int r = 0; r < rows; r++) Row(r);");
        spec.CpuBody.Add("else Parallel.For(0, rows, Row);");
        return spec;
    }

    /// <summary>Wraps per-element statements in a chunked Parallel.For over [0, size).</summary>
    internal static IEnumerable<string> Chunked(IEnumerable<string> perElement, IEnumerable<string> spans)
    {
        yield return "void Chunk(int c)";
        yield return "{";
        foreach (var s in spans)
            yield return "    " + s;
        yield return "    int end = Math.Min(size, (c + 1) * 16384);";
        yield return "    for (int i = c * 16384; i < end; i++)";
        yield return "    {";
        foreach (var s in perElement)
            yield return "        " + s;
        yield return "    }";
        yield return "}";
        yield return "int chunks = (size + 16383) / 16384;";
        yield return "if (chunks < 4) for (int c = 0; c < chunks; c++) Chunk(c);";
        yield return "else Parallel.For(0, chunks, Chunk);";
    }
}
