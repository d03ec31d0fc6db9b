using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

// Shape rules of the movement ops whose result depends on integer arguments (declared "custom" in the DSL).
internal sealed partial class ShapeInference
{
    private Value Movement(OpCallExpr call, List<int> inputs, List<SymExpr> sizes)
    {
        var x = _nodes[inputs[0]];
        var shape = x.Shape.ToList();
        switch (call.Op.Kind)
        {
            case OpKind.Reshape:
                return Reshape(call, x, sizes);
            case OpKind.Transpose:
            {
                if (Axis(call, x, sizes[0]) is not { } a0 || Axis(call, x, sizes[1]) is not { } a1)
                    return Value.Invalid;
                (shape[a0], shape[a1]) = (shape[a1], shape[a0]);
                return Emit(call, inputs, new[] { a0.ToString(), a1.ToString() }, shape, x.DType);
            }
            case OpKind.Select:
            {
                if (Axis(call, x, sizes[0]) is not { } axis)
                    return Value.Invalid;
                var index = sizes[1].ConstantValue;
                var extent = shape[axis].ConstantValue;
                if (index is null || index < 0 || (extent is not null && index >= extent))
                {
                    Report(DiagnosticDescriptors.ShapeMismatch, call.Location, "Select",
                        $"index {sizes[1]} is not a constant inside dim {axis} of {Show(x.Id)}");
                    return Value.Invalid;
                }
                shape.RemoveAt(axis);
                return Emit(call, inputs, new[] { axis.ToString(), index.Value.ToString() }, shape, x.DType);
            }
            case OpKind.Concat:
            {
                var b = _nodes[inputs[1]];
                if (Axis(call, x, sizes[0]) is not { } axis)
                    return Value.Invalid;
                var other = b.Shape.ToList();
                var same = other.Count == shape.Count && Enumerable.Range(0, shape.Count).All(i => i == axis || shape[i].Equals(other[i]));
                if (!same)
                {
                    Report(DiagnosticDescriptors.ShapeMismatch, call.Location, "Concat",
                        $"{Show(x.Id)} and {Show(b.Id)} differ outside axis {axis}");
                    return Value.Invalid;
                }
                shape[axis] = shape[axis] + other[axis];
                return Emit(call, inputs, new[] { axis.ToString() }, shape, x.DType);
            }
            case OpKind.AllGather or OpKind.ReduceScatter:
                return Collective(call, inputs, x, sizes[0]);
            case OpKind.SplitHeads:
            {
                var heads = sizes[0];
                var last = shape[shape.Count - 1];
                var headDim = last.DivideBy(heads);
                if (shape.Count == 0 || headDim is null)
                {
                    Report(DiagnosticDescriptors.ReshapeMismatch, call.Location, "SplitHeads", Show(x.Id), $"[…, {heads}, ?]",
                        "the heads count must be a product of dims and numbers");
                    return Value.Invalid;
                }
                shape.RemoveAt(shape.Count - 1);
                shape.Add(heads);
                shape.Add(headDim);
                return Emit(call, inputs, new string[0], shape, x.DType);
            }
            case OpKind.MergeHeads:
            {
                if (shape.Count < 2)
                {
                    Report(DiagnosticDescriptors.RankMismatch, call.Location, "MergeHeads", "x", Show(x.Id), "[*B, H, D]");
                    return Value.Invalid;
                }
                var merged = shape[shape.Count - 2] * shape[shape.Count - 1];
                shape.RemoveRange(shape.Count - 2, 2);
                shape.Add(merged);
                return Emit(call, inputs, new string[0], shape, x.DType);
            }
        }
        Report(DiagnosticDescriptors.InvalidOpDeclaration, call.Location, call.Op.Name, call.Op.ShapeRule, "the generator has no custom rule for this op");
        return Value.Invalid;
    }

    private Value Reshape(OpCallExpr call, Node x, List<SymExpr> target)
    {
        var total = Shapes.Product(x.Shape);
        var inferred = target.FindIndex(d => d.Equals(SymExpr.Const(-1)));
        var targetText = "[" + string.Join(", ", target.Select(d => d.Equals(SymExpr.Const(-1)) ? "-1" : _scope.Display(d))) + "]";
        if (target.Count(d => d.Equals(SymExpr.Const(-1))) > 1)
        {
            Report(DiagnosticDescriptors.ReshapeMismatch, call.Location, "Reshape", Show(x.Id), targetText, "at most one dim may be -1");
            return Value.Invalid;
        }
        var known = target.Where((d, i) => i != inferred).Aggregate(SymExpr.Const(1), (a, d) => a * d);
        if (inferred >= 0)
        {
            var rest = total.DivideBy(known);
            if (rest is null)
            {
                Report(DiagnosticDescriptors.ReshapeMismatch, call.Location, "Reshape", Show(x.Id), targetText,
                    "-1 cannot be inferred when the other dims form a sum");
                return Value.Invalid;
            }
            target[inferred] = rest;
        }
        else if (!known.Equals(total))
        {
            Report(DiagnosticDescriptors.ReshapeMismatch, call.Location, "Reshape", Show(x.Id), targetText,
                $"{_scope.Display(total)} elements cannot become {_scope.Display(known)}");
            return Value.Invalid;
        }
        return Emit(call, new List<int> { x.Id }, new string[0], target, x.DType);
    }

    private int? Axis(OpCallExpr call, Node x, SymExpr value)
    {
        var axis = value.ConstantValue;
        if (axis is { } a && a < 0)
            axis = a + x.Shape.Count;
        if (axis is null || axis < 0 || axis >= x.Shape.Count)
        {
            Report(DiagnosticDescriptors.AxisOutOfRange, call.Location, call.Op.Name, value.ToString(), Show(x.Id));
            return null;
        }
        return (int)axis.Value;
    }

    private Value Emit(OpCallExpr call, IEnumerable<int> inputs, IEnumerable<string> attrs, IEnumerable<SymExpr> shape, DType dtype) =>
        Value.OfNode(Add(call.Op.Kind, call.Op.Name, call.Op.Group, inputs, attrs, shape, dtype, call.Location, call.Text));
}
