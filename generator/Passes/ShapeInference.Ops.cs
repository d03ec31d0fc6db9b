using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

internal sealed partial class ShapeInference
{
    private Value Op(OpCallExpr call)
    {
        var op = call.Op;
        _ops[op.Name] = op;
        var tensors = new Dictionary<string, int>();
        var attrs = new List<string>();
        var sizes = new List<SymExpr>();
        for (var i = 0; i < call.Args.Count; i++)
        {
            var parameter = op.Parameters[i < op.Parameters.Count ? i : op.Parameters.Count - 1];
            var value = Evaluate(call.Args[i]);
            if (!value.IsValid)
                return Value.Invalid;
            switch (parameter.Kind)
            {
                case "Tensor" or "OptionalTensor" when value.Node is { } node:
                    tensors[parameter.Name] = node;
                    break;
                case "Float" when value.Const is not null:
                    attrs.Add(value.Const);
                    break;
                case "Float" when value.Float is not null || value.Size?.ConstantValue is not null:
                    attrs.Add(FloatLiteral(value.Float ?? value.Size!.ConstantValue!.Value.ToString(CultureInfo.InvariantCulture)));
                    break;
                case "Int" or "IntArray" when value.Size is { } size:
                    sizes.Add(size);
                    break;
                default:
                    return Unsupported(call.Args[i], $"argument '{parameter.Name}' of {op.Name} must be a {Describe(parameter.Kind)}");
            }
        }
        if (op.Parameters.Any(p => p.Kind == "Tensor" && !tensors.ContainsKey(p.Name)))
            return Unsupported(call, $"{op.Name} needs its tensor arguments");

        var inputs = op.Parameters.Where(p => tensors.ContainsKey(p.Name)).Select(p => tensors[p.Name]).ToList();
        if (op.ShapeRule == "custom")
            return Movement(call, inputs, sizes);

        var rule = ShapeRule.Parse(op.ShapeRule, out var error);
        if (rule is null)
        {
            Report(DiagnosticDescriptors.InvalidOpDeclaration, call.Location, op.Name, op.ShapeRule, error ?? "");
            return Value.Invalid;
        }
        var shape = Unify(call, rule, tensors);
        if (shape is null)
            return Value.Invalid;
        attrs.AddRange(sizes.Select(s => s.ToCSharp()));
        // The dtype rule: an op computes in the float type of its first float operand (f32 for every op today).
        var dtype = inputs.Select(i => _nodes[i].DType).Where(d => d != DType.I64).DefaultIfEmpty(DType.F32).First();
        return Value.OfNode(Add(op.Kind, op.Name, op.Group, inputs, attrs, shape, dtype, call.Location, call.Text));
    }

    /// <summary>Matches argument shapes against the rule's patterns and builds the result shape.</summary>
    private List<SymExpr>? Unify(OpCallExpr call, ShapeRule rule, Dictionary<string, int> tensors)
    {
        var vars = new Dictionary<string, (SymExpr Value, string From)>();
        var stars = new Dictionary<string, (List<SymExpr> Value, string From)>();
        foreach (var arg in rule.Args)
        {
            if (!tensors.TryGetValue(arg.Name, out var node))
            {
                if (arg.Optional)
                    continue;
                Report(DiagnosticDescriptors.InvalidOpDeclaration, call.Location, call.Op.Name, call.Op.ShapeRule,
                    $"the rule names '{arg.Name}', which is not a tensor parameter");
                return null;
            }
            var shape = _nodes[node].Shape.ToList();
            var dtype = _nodes[node].DType;
            if (arg.IsInt != (dtype == DType.I64))
            {
                Report(DiagnosticDescriptors.DTypeMismatch, call.Location, call.Op.Name, arg.Name, dtype.ToString(), arg.IsInt ? "I64" : "F32");
                return null;
            }
            var patterns = arg.Dims;
            var expected = "[" + string.Join(", ", patterns.Select(p => p.Kind switch
            {
                DimPatternKind.Star => "*" + p.Name,
                DimPatternKind.Suffix => ".." + p.Name,
                _ => p.Name,
            })) + "]";
            var offset = 0;
            if (patterns.Count > 0 && patterns[0].Kind == DimPatternKind.Suffix)
            {
                var full = stars.TryGetValue(patterns[0].Name, out var bound) ? bound.Value : null;
                if (full is null || shape.Count > full.Count || !shape.SequenceEqual(full.Skip(full.Count - shape.Count)))
                {
                    Report(DiagnosticDescriptors.ShapeMismatch, call.Location, call.Op.Name,
                        $"'{arg.Name}' with shape {Show(node)} does not broadcast against {(full is null ? "its partner" : _scope.Display(full.ToEquatableArray()))} (it must equal a trailing part of it)");
                    return null;
                }
                continue;
            }
            if (patterns.Count > 0 && patterns[0].Kind == DimPatternKind.Star)
            {
                var lead = shape.Count - (patterns.Count - 1);
                if (lead < 0)
                {
                    Report(DiagnosticDescriptors.RankMismatch, call.Location, call.Op.Name, arg.Name, Show(node), expected);
                    return null;
                }
                var leading = shape.Take(lead).ToList();
                if (stars.TryGetValue(patterns[0].Name, out var prior) && !prior.Value.SequenceEqual(leading))
                {
                    Report(DiagnosticDescriptors.ShapeMismatch, call.Location, call.Op.Name,
                        $"the leading dims of '{arg.Name}' {_scope.Display(leading.ToEquatableArray())} differ from those of '{prior.From}' {_scope.Display(prior.Value.ToEquatableArray())}");
                    return null;
                }
                stars[patterns[0].Name] = (leading, arg.Name);
                offset = lead;
                patterns = patterns.Skip(1).ToList();
            }
            else if (shape.Count != patterns.Count)
            {
                Report(DiagnosticDescriptors.RankMismatch, call.Location, call.Op.Name, arg.Name, Show(node), expected);
                return null;
            }
            for (var i = 0; i < patterns.Count; i++)
            {
                var actual = shape[offset + i];
                var pattern = patterns[i];
                if (pattern.Kind == DimPatternKind.Const && !actual.Equals(SymExpr.Const(pattern.Value)))
                {
                    Report(DiagnosticDescriptors.ShapeMismatch, call.Location, call.Op.Name,
                        $"dim {offset + i} of '{arg.Name}' {Show(node)} must be {pattern.Value}");
                    return null;
                }
                if (pattern.Kind != DimPatternKind.Var)
                    continue;
                if (vars.TryGetValue(pattern.Name, out var boundVar) && !boundVar.Value.Equals(actual))
                {
                    Report(DiagnosticDescriptors.ShapeMismatch, call.Location, call.Op.Name,
                        $"'{arg.Name}' has shape {Show(node)}, so {pattern.Name} = {_scope.Display(actual)}, but '{boundVar.From}' gives {pattern.Name} = {_scope.Display(boundVar.Value)}");
                    return null;
                }
                vars[pattern.Name] = (actual, arg.Name);
            }
        }
        var result = new List<SymExpr>();
        foreach (var pattern in rule.Result)
        {
            switch (pattern.Kind)
            {
                case DimPatternKind.Star when stars.TryGetValue(pattern.Name, out var star):
                    result.AddRange(star.Value);
                    break;
                case DimPatternKind.Var when vars.TryGetValue(pattern.Name, out var v):
                    result.Add(v.Value);
                    break;
                case DimPatternKind.Const:
                    result.Add(SymExpr.Const(pattern.Value));
                    break;
                default:
                    Report(DiagnosticDescriptors.InvalidOpDeclaration, call.Location, call.Op.Name, call.Op.ShapeRule,
                        $"the result uses '{pattern.Name}', which no argument binds");
                    return null;
            }
        }
        return result;
    }

    /// <summary>Calls a submodule's Forward: unifies the child's input shapes with the arguments.</summary>
    private int? Call(SubCallExpr call, OpKind kind)
    {
        var decl = _module.Submodules.FirstOrDefault(s => s.Field == call.Field);
        if (decl is null || decl.IsArray != call.Indexed)
        {
            Report(DiagnosticDescriptors.SubmoduleCallMismatch, call.Location, call.Field,
                decl is null ? "it is not a [Submodule]" : decl.IsArray ? "an array of layers is called in the layer loop" : "it is not an array");
            return null;
        }
        var child = _children(decl.TypeFullName);
        if (child is null || child.HasErrors || child.Output < 0)
        {
            _childFailed = true; // the child reports its own errors; stop here to avoid follow-on noise
            return null;
        }
        var childInputs = child.Nodes.Where(n => n.Kind == OpKind.Input).ToList();
        if (childInputs.Count != call.Args.Count)
        {
            Report(DiagnosticDescriptors.SubmoduleCallMismatch, call.Location, call.Field,
                $"{decl.TypeName}.Forward takes {childInputs.Count} tensors, {call.Args.Count} given");
            return null;
        }
        var inputDims = new HashSet<string>(child.Dims.Where(d => d.Kind == "input").Select(d => d.Name));
        var bindings = new Dictionary<string, SymExpr>();
        var args = new List<int>();
        for (var i = 0; i < childInputs.Count; i++)
        {
            if (Tensor(call.Args[i]) is not { } arg)
                return null;
            args.Add(arg);
            var actual = _nodes[arg].Shape;
            var declared = childInputs[i].Shape;
            var ok = actual.Count == declared.Count && _nodes[arg].DType == childInputs[i].DType;
            for (var axis = 0; ok && axis < declared.Count; axis++)
            {
                var symbols = declared[axis].Symbols.ToList();
                if (symbols.Count == 1 && inputDims.Contains(symbols[0]) && declared[axis].Equals(SymExpr.Symbol(symbols[0]))
                    && !bindings.ContainsKey(symbols[0]))
                {
                    bindings[symbols[0]] = actual[axis];
                    continue;
                }
                ok = declared[axis].Substitute(s => bindings.TryGetValue(s, out var b) ? b : null).Equals(actual[axis]);
            }
            if (!ok)
            {
                Report(DiagnosticDescriptors.SubmoduleCallMismatch, call.Location, call.Field,
                    $"argument {i + 1} has shape {Show(arg)} ({_nodes[arg].DType}) but {decl.TypeName}.Forward expects '{childInputs[i].Op}' {Shapes.Format(declared)} ({childInputs[i].DType})");
                return null;
            }
        }
        var output = child.Nodes[child.Output].Shape.Select(d => d.Substitute(s => bindings.TryGetValue(s, out var b) ? b : null));
        return Add(kind, call.Field, OpGroup.Call, args, new[] { decl.TypeFullName }, output, child.Nodes[child.Output].DType, call.Location, call.Text);
    }

    private void Loop(LoopStmt loop)
    {
        if (!_locals.TryGetValue(loop.Target, out var carried))
        {
            Report(DiagnosticDescriptors.UnknownName, loop.Location, loop.Target, _module.Name);
            return;
        }
        if (Call(loop.Call, OpKind.Loop) is not { } id)
            return;
        if (!_nodes[id].Shape.Equals(_nodes[carried].Shape))
        {
            Report(DiagnosticDescriptors.LoopCarriedShape, loop.Location, loop.Call.Field, Show(carried), Show(id));
            return;
        }
        var node = _nodes[id];
        _nodes[id] = node with { Attrs = node.Attrs.Concat(new[] { node.Inputs.ToList().IndexOf(carried).ToString() }).ToEquatableArray() };
        _locals[loop.Target] = id;
    }

    private static string FloatLiteral(string text)
    {
        var t = text.TrimEnd('d', 'D', 'm', 'M');
        return t.EndsWith("f") || t.EndsWith("F") ? t : t + "f";
    }

    private static string Describe(string kind) => kind switch
    {
        "Tensor" or "OptionalTensor" => "tensor",
        "Float" => "number literal or a [Const]",
        _ => "size (a dim, an integer or + - * / of them)",
    };
}
