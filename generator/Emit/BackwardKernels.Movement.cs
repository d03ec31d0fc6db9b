using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

// Backward of rotary embeddings (the inverse rotation) and of the movement ops that copy (scatter-adds).
internal static partial class BackwardKernelsMovement
{
    /// <summary>dx += R(−angle)·dy: the same pairs and angles as the forward, with the partner's sign flipped.</summary>
    public static KernelSpec Rotary(FusedGraph train, Node node, string dx, string dy)
    {
        var graph = train.Graph;
        var forward = GroupLowering.Lower(train, train.Groups.First(g => g.Output == node.Id), LoweringTarget.HostRunner)!;
        var spec = new KernelSpec($"B{node.Id}_{node.Op}", new[] { $"B{node.Id}_{node.Op}: backward of {node.Op} (line {node.Line}): dx += rotate(dy, −angle)" }, forward.Extent);
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, dx));
        spec.Params.Add(new KernelParam("x", ParamKind.Tensor, dy));
        spec.Params.AddRange(forward.Params.Skip(2));
        // The forward computes out = x·cos + partner·sin with partner = ∓x[d ± half]; the transpose flips the partner's
        // sign and accumulates.
        spec.GpuBody.AddRange(forward.GpuBody.Select(l => l
            .Replace("float partner = dd < half ? -x[index + half] : x[index - half];", "float partner = dd < half ? x[index + half] : -x[index - half];")
            .Replace("output[index] = ", "output[index] += ")));
        spec.CpuBody.AddRange(forward.CpuBody.Select(l => l
            .Replace("float partner = dd < halfD ? -xs[offset + dd + halfD] : xs[offset + dd - halfD];", "float partner = dd < halfD ? xs[offset + dd + halfD] : -xs[offset + dd - halfD];")
            .Replace("o[offset + dd] = ", "o[offset + dd] += ")));
        return spec;
    }

    /// <summary>Select, Transpose, Concat and Embedding: each output element's gradient added where it was read from.</summary>
    public static KernelSpec Copy(FusedGraph train, Node node, int operand, string dInput, string dy)
    {
        var graph = train.Graph;
        var forward = GroupLowering.Lower(train, train.Groups.First(g => g.Output == node.Id), LoweringTarget.HostRunner)!;
        var name = $"B{node.Id}_{node.Op}" + (node.Kind == OpKind.Concat ? (operand == 0 ? "_a" : "_b") : "");
        var spec = new KernelSpec(name, new[] { $"{name}: backward of {node.Op} (line {node.Line}): scatter-add of dy where the forward read" }, forward.Extent);
        // Same parameters as the forward, with output → dy and the read input → its gradient.
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, dy));
        foreach (var p in forward.Params.Skip(1))
        {
            var isTarget = p.Kind == ParamKind.Tensor && p.HostValue == EmitNames.Var(graph, node.Inputs[operand]) && p.Name != "ids";
            spec.Params.Add(isTarget ? p with { HostValue = dInput } : p);
        }
        switch (node.Op)
        {
            case "Select":
                spec.GpuBody.Add("int o = index / inner, r = index % inner;");
                spec.GpuBody.Add("x[(o * extent + at) * inner + r] += output[index];");
                spec.CpuBody.Add("void Row(int o) => TensorPrimitives.Add(x.Span.Slice((o * extent + at) * inner, inner), output.Span.Slice(o * inner, inner), x.Span.Slice((o * extent + at) * inner, inner));");
                spec.CpuBody.Add("if ((long)outer * inner < 65536) for (int o = 0; o < outer; o++) Row(o);");
                spec.CpuBody.Add("else Parallel.For(0, outer, Row);");
                break;
            case "Concat":
            {
                var target = operand == 0 ? "a" : "b";
                spec.GpuBody.Add("int row = aRow + bRow;");
                spec.GpuBody.Add("int o = index / row, r = index % row;");
                spec.GpuBody.Add(operand == 0 ? "if (r < aRow) a[o * aRow + r] += output[index];" : "if (r >= aRow) b[o * bRow + r - aRow] += output[index];");
                var offset = operand == 0 ? "0" : "aRow";
                var len = operand == 0 ? "aRow" : "bRow";
                spec.CpuBody.Add($"void Row(int o) => TensorPrimitives.Add({target}.Span.Slice(o * {len}, {len}), output.Span.Slice(o * (aRow + bRow) + {offset}, {len}), {target}.Span.Slice(o * {len}, {len}));");
                spec.CpuBody.Add("if ((long)outer * (aRow + bRow) < 65536) for (int o = 0; o < outer; o++) Row(o);");
                spec.CpuBody.Add("else Parallel.For(0, outer, Row);");
                break;
            }
            case "Transpose":
                spec.GpuBody.AddRange(forward.GpuBody.Select(l => l.Replace("output[index] = x[source];", "x[source] += output[index];")));
                // Each output element maps to a distinct source element, so the chunks never write the same place.
                spec.CpuBody.AddRange(forward.CpuBody.Select(l => l.Replace("os[i] = xs[source];", "xs[source] += os[i];")));
                break;
            case "Embedding":
                // Repeated ids add into the same row: atomics on the GPU, one thread on the CPU.
                spec.GpuBody.Add("int row = index / width, col = index % width;");
                spec.GpuBody.Add("int id = XMath.Clamp(ids[row], 0, vocab - 1);");
                spec.GpuBody.Add("Atomic.Add(ref table[id * width + col], output[index]);");
                spec.CpuBody.Add("var idSpan = ids.IntSpan; var t = table.Span; var d = output.Span;");
                spec.CpuBody.Add("for (int r = 0; r < rows; r++)");
                spec.CpuBody.Add("    TensorPrimitives.Add(t.Slice(idSpan[r] * width, width), d.Slice(r * width, width), t.Slice(idSpan[r] * width, width));");
                break;
        }
        return spec;
    }
}
