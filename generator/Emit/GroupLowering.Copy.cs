using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

// Data movement that needs a copy: select, transpose, concat, embedding gather.
internal static partial class GroupLowering
{
    private static KernelSpec Copy(Graph graph, KernelGroup group, LoweringTarget target)
    {
        var node = graph[group.Output];
        var spec = new KernelSpec(group.Name, Comment(graph, group, ""), EmitNames.Size(graph, node.Id));
        spec.Params.Add(new KernelParam("output", ParamKind.Tensor, EmitNames.Var(graph, node.Id)));
        var input = graph[node.Inputs[0]];
        var g = spec.GpuBody;
        var c = spec.CpuBody;
        switch (node.Kind)
        {
            case OpKind.Select:
            {
                // x viewed as [outer, extent, inner]: take index `at` of the middle axis.
                var axis = int.Parse(node.Attrs[0]);
                spec.Params.Add(new KernelParam("x", ParamKind.Tensor, EmitNames.Var(graph, input.Id)));
                spec.Params.Add(new KernelParam("outer", ParamKind.Int, Product(input, 0, axis)));
                spec.Params.Add(new KernelParam("extent", ParamKind.Int, input.Shape[axis].ToCSharp()));
                spec.Params.Add(new KernelParam("inner", ParamKind.Int, Product(input, axis + 1, input.Shape.Count)));
                spec.Params.Add(new KernelParam("at", ParamKind.Int, node.Attrs[1]));
                g.Add("int o = index / inner, r = index % inner;");
                g.Add("output[index] = x[(o * extent + at) * inner + r];");
                c.Add("void Row(int o) => x.Span.Slice((o * extent + at) * inner, inner).CopyTo(output.Span.Slice(o * inner, inner));");
                AddRowLoop(c, "outer", "inner");
                break;
            }
            case OpKind.Concat:
            {
                var axis = int.Parse(node.Attrs[0]);
                var other = graph[node.Inputs[1]];
                spec.Params.Add(new KernelParam("a", ParamKind.Tensor, EmitNames.Var(graph, input.Id)));
                spec.Params.Add(new KernelParam("b", ParamKind.Tensor, EmitNames.Var(graph, other.Id)));
                spec.Params.Add(new KernelParam("outer", ParamKind.Int, Product(input, 0, axis)));
                spec.Params.Add(new KernelParam("aRow", ParamKind.Int, Product(input, axis, input.Shape.Count)));
                spec.Params.Add(new KernelParam("bRow", ParamKind.Int, Product(other, axis, other.Shape.Count)));
                g.Add("int row = aRow + bRow;");
                g.Add("int o = index / row, r = index % row;");
                g.Add("output[index] = r < aRow ? a[o * aRow + r] : b[o * bRow + r - aRow];");
                c.Add("void Row(int o)");
                c.Add("{");
                c.Add("    var dst = output.Span.Slice(o * (aRow + bRow), aRow + bRow);");
                c.Add("    a.Span.Slice(o * aRow, aRow).CopyTo(dst);");
                c.Add("    b.Span.Slice(o * bRow, bRow).CopyTo(dst.Slice(aRow));");
                c.Add("}");
                AddRowLoop(c, "outer", "aRow + bRow");
                break;
            }
            case OpKind.Transpose:
            {
                // Swap axes a0 < a1 of x viewed as [outer, n0, mid, n1, inner].
                var a0 = int.Parse(node.Attrs[0]);
                var a1 = int.Parse(node.Attrs[1]);
                if (a0 > a1)
                    (a0, a1) = (a1, a0);
                spec.Params.Add(new KernelParam("x", ParamKind.Tensor, EmitNames.Var(graph, input.Id)));
                spec.Params.Add(new KernelParam("n0", ParamKind.Int, input.Shape[a0].ToCSharp()));
                spec.Params.Add(new KernelParam("mid", ParamKind.Int, Product(input, a0 + 1, a1)));
                spec.Params.Add(new KernelParam("n1", ParamKind.Int, input.Shape[a1].ToCSharp()));
                spec.Params.Add(new KernelParam("inner", ParamKind.Int, Product(input, a1 + 1, input.Shape.Count)));
                var map = new[]
                {
                    "int r = i % inner; int t = i / inner;",
                    "int j0 = t % n0; t /= n0;",
                    "int m = t % mid; t /= mid;",
                    "int j1 = t % n1; int o = t / n1;",
                    "int source = (((o * n0 + j0) * mid + m) * n1 + j1) * inner + r;",
                };
                g.Add("int i = index;");
                g.AddRange(map);
                g.Add("output[index] = x[source];");
                c.Add("var src = x; var dst = output;");
                c.Add("void Chunk(int start)");
                c.Add("{");
                c.Add("    var xs = src.Span; var os = dst.Span;");
                c.Add("    int end = Math.Min(start + 16384, os.Length);");
                c.Add("    for (int i = start; i < end; i++)");
                c.Add("    {");
                c.AddRange(map.Select(l => "        " + l));
                c.Add("        os[i] = xs[source];");
                c.Add("    }");
                c.Add("}");
                c.Add("int chunks = (output.Length + 16383) / 16384;");
                c.Add("Parallel.For(0, chunks, k => Chunk(k * 16384));");
                break;
            }
            case OpKind.Embedding:
            {
                var table = graph[node.Inputs[1]];
                spec.Params.Add(new KernelParam("ids", ParamKind.IntTensor, EmitNames.Var(graph, input.Id)));
                spec.Params.Add(new KernelParam("table", ParamKind.Tensor, EmitNames.Var(graph, table.Id)));
                spec.Params.Add(new KernelParam("rows", ParamKind.Int, EmitNames.Size(graph, input.Id)));
                spec.Params.Add(new KernelParam("width", ParamKind.Int, table.Shape[1].ToCSharp()));
                spec.Params.Add(new KernelParam("vocab", ParamKind.Int, table.Shape[0].ToCSharp()));
                // The host checks ids against the vocabulary before launching; the kernel clamps defensively.
                g.Add("int row = index / width, col = index % width;");
                g.Add("int id = XMath.Clamp(ids[row], 0, vocab - 1);");
                g.Add("output[index] = table[id * width + col];");
                c.Add("void Row(int r)");
                c.Add("{");
                c.Add("    int id = ids.IntSpan[r];");
                c.Add("    if ((uint)id >= (uint)vocab) throw new ModelException($\"token id {id} is outside the vocabulary of {vocab}\");");
                c.Add("    table.Span.Slice(id * width, width).CopyTo(output.Span.Slice(r * width, width));");
                c.Add("}");
                AddRowLoop(c, "rows", "width");
                break;
            }
            // Fusion puts exactly these four kinds in a copy group; anything else is an internal error, reported, not an empty kernel.
            default:
                throw new UnloweredOpException(node, target, $"a {node.Kind} op is not a copy");
        }
        return spec;
    }

    private static string Product(Node node, int from, int to) =>
        node.Shape.Skip(from).Take(to - from).Aggregate(SymExpr.Const(1), (a, d) => a * d).ToCSharp();
}
