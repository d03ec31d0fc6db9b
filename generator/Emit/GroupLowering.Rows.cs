using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

// Row-wise kernels: statistics over the last axis (norms, softmax) and rotary embeddings.
internal static partial class GroupLowering
{
    /// <summary>LayerNorm / RmsNorm, optionally computing the residual sum a + b first and writing it too.</summary>
    private static KernelSpec Norm(Graph graph, KernelGroup group)
    {
        var norm = graph[group.Nodes[group.Nodes.Count - 1]];
        var withAdd = group.Nodes.Count == 2;
        var isLayerNorm = norm.Kind == OpKind.LayerNorm;
        var rows = EmitNames.Rows(graph, norm.Id);
        var spec = new KernelSpec(group.Name, Comment(graph, group, withAdd ? " (residual add fused)" : ""), rows);
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, EmitNames.Var(graph, norm.Id)));
        if (withAdd)
        {
            var add = graph[group.Nodes[0]];
            // Without a later reader of the sum, the kernel adds into the output row and normalises it in place.
            spec.Params.Add(new KernelParam("sum", ParamKind.Tensor, EmitNames.Var(graph, group.Residual >= 0 ? add.Id : norm.Id)));
            spec.Params.Add(new KernelParam("a", ParamKind.Tensor, EmitNames.Var(graph, add.Inputs[0])));
            spec.Params.Add(new KernelParam("b", ParamKind.Tensor, EmitNames.Var(graph, add.Inputs[1])));
        }
        else
        {
            spec.Params.Add(new KernelParam("x", ParamKind.Tensor, EmitNames.Var(graph, norm.Inputs[0])));
        }
        spec.Params.Add(new KernelParam("weight", ParamKind.Tensor, EmitNames.Var(graph, norm.Inputs[1])));
        if (isLayerNorm)
            spec.Params.Add(new KernelParam("bias", ParamKind.Tensor, EmitNames.Var(graph, norm.Inputs[2])));
        spec.Params.Add(new KernelParam("rows", ParamKind.Int, rows));
        spec.Params.Add(new KernelParam("d", ParamKind.Int, EmitNames.Last(graph, norm.Id)));
        spec.Params.Add(new KernelParam("eps", ParamKind.Float, norm.Attrs[0]));

        var src = withAdd ? "sum" : "x";
        var g = spec.GpuBody;
        g.Add("int offset = index * d;");
        if (withAdd)
            g.Add("for (int j = 0; j < d; j++) sum[offset + j] = a[offset + j] + b[offset + j];");
        if (isLayerNorm)
        {
            g.Add("float mean = 0f;");
            g.Add($"for (int j = 0; j < d; j++) mean += {src}[offset + j];");
            g.Add("mean /= d;");
            g.Add("float variance = 0f;");
            g.Add($"for (int j = 0; j < d; j++) {{ float c = {src}[offset + j] - mean; variance += c * c; }}");
            g.Add("float rstd = 1f / XMath.Sqrt(variance / d + eps);");
            g.Add($"for (int j = 0; j < d; j++) output[offset + j] = ({src}[offset + j] - mean) * rstd * weight[j] + bias[j];");
        }
        else
        {
            g.Add("float squares = 0f;");
            g.Add($"for (int j = 0; j < d; j++) squares += {src}[offset + j] * {src}[offset + j];");
            g.Add("float rstd = 1f / XMath.Sqrt(squares / d + eps);");
            g.Add($"for (int j = 0; j < d; j++) output[offset + j] = {src}[offset + j] * rstd * weight[j];");
        }

        var c = spec.CpuBody;
        c.Add("void Row(int r)");
        c.Add("{");
        c.Add("    var o = output.Span.Slice(r * d, d);");
        if (withAdd)
        {
            c.Add("    var s = sum.Span.Slice(r * d, d);");
            c.Add("    TensorPrimitives.Add(a.Span.Slice(r * d, d), b.Span.Slice(r * d, d), s);");
            c.Add("    ReadOnlySpan<float> row = s;");
        }
        else
        {
            c.Add("    ReadOnlySpan<float> row = x.Span.Slice(r * d, d);");
        }
        if (isLayerNorm)
        {
            c.Add("    float mean = TensorPrimitives.Sum(row) / d;");
            c.Add("    TensorPrimitives.Subtract(row, mean, o);");
            c.Add("    float rstd = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(o) / d + eps);");
            c.Add("    TensorPrimitives.Multiply(o, rstd, o);");
            c.Add("    TensorPrimitives.FusedMultiplyAdd(o, weight.Span, bias.Span, o);");
        }
        else
        {
            c.Add("    float rstd = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / d + eps);");
            c.Add("    TensorPrimitives.Multiply(row, rstd, o);");
            c.Add("    TensorPrimitives.Multiply(o, weight.Span, o);");
        }
        c.Add("}");
        AddRowLoop(c, "rows", "d");
        return spec;
    }

    private static KernelSpec Softmax(Graph graph, KernelGroup group)
    {
        var node = graph[group.Output];
        var rows = EmitNames.Rows(graph, node.Id);
        var spec = new KernelSpec(group.Name, Comment(graph, group, ""), rows);
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, EmitNames.Var(graph, node.Id)));
        spec.Params.Add(new KernelParam("x", ParamKind.Tensor, EmitNames.Var(graph, node.Inputs[0])));
        spec.Params.Add(new KernelParam("rows", ParamKind.Int, rows));
        spec.Params.Add(new KernelParam("d", ParamKind.Int, EmitNames.Last(graph, node.Id)));
        spec.GpuBody.AddRange(new[]
        {
            "int offset = index * d;",
            "float max = float.NegativeInfinity;",
            "for (int j = 0; j < d; j++) max = XMath.Max(max, x[offset + j]);",
            "float total = 0f;",
            "for (int j = 0; j < d; j++) { float e = XMath.Exp(x[offset + j] - max); output[offset + j] = e; total += e; }",
            "for (int j = 0; j < d; j++) output[offset + j] /= total;",
        });
        spec.CpuBody.Add("void Row(int r) => TensorPrimitives.SoftMax(x.Span.Slice(r * d, d), output.Span.Slice(r * d, d));");
        AddRowLoop(spec.CpuBody, "rows", "d");
        return spec;
    }

    /// <summary>
    /// VisionRotary (x [N,H,D], pos [N,2]) and MRope (x [B,S,H,D], pos [3,B,S]): rotate_half pairs d and d + D/2 by the
    /// angle position·inv_freq, computed in f32 as Hugging Face does.
    /// </summary>
    private static KernelSpec Rotary(Graph graph, KernelGroup group)
    {
        var node = graph[group.Output];
        var vision = node.Kind == OpKind.VisionRotary;
        var shape = node.Shape;
        var spec = new KernelSpec(group.Name, Comment(graph, group, ""), EmitNames.Size(graph, node.Id));
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, EmitNames.Var(graph, node.Id)));
        spec.Params.Add(new KernelParam("x", ParamKind.Tensor, EmitNames.Var(graph, node.Inputs[0])));
        spec.Params.Add(new KernelParam("pos", ParamKind.IntTensor, EmitNames.Var(graph, node.Inputs[1])));
        var positions = vision ? shape[0] : shape[0] * shape[1];
        spec.Params.Add(new KernelParam("positions", ParamKind.Int, positions.ToCSharp()));
        spec.Params.Add(new KernelParam("heads", ParamKind.Int, shape[shape.Count - 2].ToCSharp()));
        spec.Params.Add(new KernelParam("d", ParamKind.Int, shape[shape.Count - 1].ToCSharp()));
        spec.Params.Add(new KernelParam("theta", ParamKind.Float, node.Attrs[0]));
        if (!vision)
        {
            spec.Params.Add(new KernelParam("sectionT", ParamKind.Int, node.Attrs[1]));
            spec.Params.Add(new KernelParam("sectionH", ParamKind.Int, node.Attrs[2]));
        }
        // Angle of dimension dd at position p: vision splits the D/2 frequencies into an h half and a w half with
        // inv_freq over D/2; M-RoPE takes frequency k from axis t, h or w by section, with inv_freq over D.
        var angle = vision
            ? new[]
            {
                "int half = d / 2, quarter = d / 4;",
                "int k = dd % half;",
                "int axis = k < quarter ? 0 : 1;",
                "float invFreq = 1f / {POW}(theta, (2 * (k % quarter)) / (float)half);",
                "float angle = pos[p * 2 + axis] * invFreq;",
            }
            : new[]
            {
                "int half = d / 2;",
                "int k = dd % half;",
                "int axis = k < sectionT ? 0 : k < sectionT + sectionH ? 1 : 2;",
                "float invFreq = 1f / {POW}(theta, (2 * k) / (float)d);",
                "float angle = pos[axis * positions + p] * invFreq;",
            };
        var g = spec.GpuBody;
        g.Add("int dd = index % d;");
        g.Add("int p = index / (heads * d);");
        g.AddRange(angle.Select(l => l.Replace("{POW}", "XMath.Pow")));
        g.Add("float partner = dd < half ? -x[index + half] : x[index - half];");
        g.Add("output[index] = x[index] * XMath.Cos(angle) + partner * XMath.Sin(angle);");

        var c = spec.CpuBody;
        c.Add("void Position(int p)");
        c.Add("{");
        c.Add("    Span<float> cos = stackalloc float[d], sin = stackalloc float[d];");
        c.Add("    var positionIds = pos.IntSpan;");
        c.Add("    for (int dd = 0; dd < d; dd++)");
        c.Add("    {");
        c.AddRange(angle.Select(l => "        " + l.Replace("{POW}", "MathF.Pow").Replace("pos[", "positionIds[")));
        c.Add("        cos[dd] = MathF.Cos(angle);");
        c.Add("        sin[dd] = MathF.Sin(angle);");
        c.Add("    }");
        c.Add("    var xs = x.Span;");
        c.Add("    var o = output.Span;");
        c.Add("    int halfD = d / 2;");
        c.Add("    for (int h = 0; h < heads; h++)");
        c.Add("    {");
        c.Add("        int offset = (p * heads + h) * d;");
        c.Add("        for (int dd = 0; dd < d; dd++)");
        c.Add("        {");
        c.Add("            float partner = dd < halfD ? -xs[offset + dd + halfD] : xs[offset + dd - halfD];");
        c.Add("            o[offset + dd] = xs[offset + dd] * cos[dd] + partner * sin[dd];");
        c.Add("        }");
        c.Add("    }");
        c.Add("}");
        c.Add("if (positions * heads * d < 65536) for (int p = 0; p < positions; p++) Position(p);");
        c.Add("else Parallel.For(0, positions, Position);");
        return spec;
    }

    private static void AddRowLoop(System.Collections.Generic.List<string> body, string rows, string d)
    {
        body.Add($"if ((long){rows} * {d} < 65536) for (int r = 0; r < {rows}; r++) Row(r);");
        body.Add($"else Parallel.For(0, {rows}, Row);");
    }
}
