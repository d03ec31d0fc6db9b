using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

// Shape rules of the collectives whose result depends on the degree (declared "custom" in the DSL): AllGather joins
// the ranks' shards along the last axis, ReduceScatter keeps one of `parts` blocks of it. ParallelCopy and AllReduce
// keep their operand's shape and use the ordinary rule "x:[*S] -> [*S]".
internal sealed partial class ShapeInference
{
    private Value Collective(OpCallExpr call, List<int> inputs, Node x, SymExpr parts)
    {
        var shape = x.Shape.ToList();
        if (shape.Count == 0)
        {
            Report(DiagnosticDescriptors.RankMismatch, call.Location, call.Op.Name, "x", Show(x.Id), "[*B, N]");
            return Value.Invalid;
        }
        var last = shape[shape.Count - 1];
        if (call.Op.Kind == OpKind.AllGather)
            shape[shape.Count - 1] = last * parts;
        else
        {
            var block = last.DivideBy(parts);
            if (block is null)
            {
                Report(DiagnosticDescriptors.ShapeMismatch, call.Location, call.Op.Name,
                    $"the last dim of {Show(x.Id)} must divide by {parts} parts (a product of dims and numbers)");
                return Value.Invalid;
            }
            shape[shape.Count - 1] = block;
        }
        return Emit(call, inputs, new[] { parts.ToCSharp() }, shape, x.DType);
    }
}
