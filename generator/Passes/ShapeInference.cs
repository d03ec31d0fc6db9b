using System;
using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Diagnostics;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Passes;

/// <summary>
/// Pass 1: interprets Forward over symbolic shapes and builds the typed graph. Every op's shape rule comes
/// from its [Op] declaration (see <see cref="ShapeRule"/>), movement ops have rules in <see cref="MovementRules"/>.
/// A mismatch is a build error on the offending line.
/// </summary>
internal sealed partial class ShapeInference
{
    private readonly ModuleModel _module;
    private readonly Func<string, Graph?> _children;
    private readonly DimScope _scope = new();
    private readonly List<DimInfo> _dims = new();
    private readonly List<Node> _nodes = new();
    private readonly List<DiagnosticInfo> _diagnostics = new();
    private readonly Dictionary<string, int> _locals = new();
    private readonly Dictionary<string, int> _params = new();
    private readonly Dictionary<string, OpInfo> _ops = new();
    private bool _childFailed;

    private ShapeInference(ModuleModel module, Func<string, Graph?> children)
    {
        _module = module;
        _children = children;
    }

    /// <summary>Runs the pass. <paramref name="children"/> gives the graphs of submodule types (null if unusable).</summary>
    public static Graph Run(ModuleModel module, Func<string, Graph?> children)
    {
        var pass = new ShapeInference(module, children);
        var output = -1;
        if (module.Forward is { } forward && module.Diagnostics.Count == 0)
        {
            pass.BindDims();
            pass.BindInputs(forward);
            if (pass._diagnostics.Count == 0)
                output = pass.RunBody(forward);
        }
        return new Graph(module.Namespace, module.Name, pass._dims.ToEquatableArray(), module.Consts, pass._nodes.ToEquatableArray(), output,
            module.Submodules, pass._ops.Values.OrderBy(o => o.Name).ToEquatableArray(), module.Diagnostics.Concat(pass._diagnostics).ToEquatableArray(),
            module.Recompute, module.Location?.FilePath ?? "");
    }

    /// <summary>The canonical-to-name map for dumps and diagnostics of this module.</summary>
    public static DimScope ScopeOf(Graph graph)
    {
        var scope = new DimScope();
        foreach (var dim in graph.Dims)
        {
            if (dim.Kind == "derived" && dim.Expression is not null && scope.Parse(dim.Expression, out _, out _) is { } value)
                scope.AddDerived(dim.Name, value);
            else
                scope.AddSymbol(dim.Name);
        }
        return scope;
    }

    private void BindDims()
    {
        foreach (var dim in _module.Dims)
        {
            if (dim.ConfigKey is not null)
            {
                _scope.AddSymbol(dim.Name);
                _dims.Add(new DimInfo(dim.Name, "config", dim.ConfigKey, dim.Default, null, -1, -1));
                continue;
            }
            var value = _scope.Parse(dim.Expression!, out var error, out var unknown);
            if (value is null)
            {
                Report(unknown is not null ? DiagnosticDescriptors.UnknownDim : DiagnosticDescriptors.InvalidDimExpression,
                    dim.Location, unknown ?? dim.Expression!, unknown is not null ? _module.Name : error!);
                continue;
            }
            _scope.AddDerived(dim.Name, value);
            _dims.Add(new DimInfo(dim.Name, "derived", null, null, dim.Expression, -1, -1));
        }
    }

    private void BindInputs(ForwardDecl forward)
    {
        // Bare names in [Shape] that are not declared dims are input dims, bound from the first tensor that has them.
        for (var i = 0; i < forward.Inputs.Count; i++)
        {
            var input = forward.Inputs[i];
            for (var axis = 0; axis < input.Shape.Count; axis++)
            {
                var name = input.Shape[axis].Trim();
                if (IsIdentifier(name) && !_scope.IsDeclared(name))
                {
                    _scope.AddSymbol(name);
                    _dims.Add(new DimInfo(name, "input", null, null, null, i, axis));
                }
            }
        }
        for (var i = 0; i < forward.Inputs.Count; i++)
        {
            var input = forward.Inputs[i];
            var shape = new List<SymExpr>();
            foreach (var text in input.Shape)
            {
                var dim = ParseDim(text, input.Location);
                if (dim is null)
                    return;
                shape.Add(dim);
            }
            var id = Add(OpKind.Input, input.Name, OpGroup.Leaf, Array.Empty<int>(), new[] { i.ToString() }, shape,
                input.DType, input.Location, input.Name);
            _locals[input.Name] = id;
        }
    }

    private int RunBody(ForwardDecl forward)
    {
        var output = -1;
        foreach (var statement in forward.Body)
        {
            if (output >= 0)
            {
                Report(DiagnosticDescriptors.UnsupportedStatement, statement.Location, statement.Text);
                break;
            }
            switch (statement)
            {
                case LetStmt let:
                    if (Tensor(let.Value) is { } value)
                        _locals[let.Name] = value;
                    break;
                case AssignStmt assign:
                    if (!_locals.ContainsKey(assign.Name))
                        Report(DiagnosticDescriptors.UnknownName, assign.Location, assign.Name, _module.Name);
                    else if (Tensor(assign.Value) is { } assigned)
                        _locals[assign.Name] = assigned;
                    break;
                case ReturnStmt ret:
                    output = Tensor(ret.Value) ?? int.MaxValue;
                    break;
                case LoopStmt loop:
                    Loop(loop);
                    break;
            }
            if (_diagnostics.Count > 0 || _childFailed)
                return -1;
        }
        if (output < 0 && _diagnostics.Count == 0 && !_childFailed)
            Report(DiagnosticDescriptors.InvalidForward, forward.Location, _module.Name, "Forward must end with 'return <tensor>;'");
        return output == int.MaxValue ? -1 : output;
    }

    private int? Tensor(Expr expr)
    {
        var value = Evaluate(expr);
        if (value.Node is { } node)
            return node;
        if (value.IsValid)
            Report(DiagnosticDescriptors.UnsupportedExpression, expr.Location, expr.Text, "a tensor is expected here");
        return null;
    }

    private Value Evaluate(Expr expr)
    {
        switch (expr)
        {
            case NameExpr name:
                return Name(name);
            case NumberExpr number:
                return number.IsInteger && long.TryParse(number.Literal, out var n) ? Value.OfSize(SymExpr.Const(n)) : Value.OfFloat(number.Literal);
            case NegateExpr negate:
                var operand = Evaluate(negate.Operand);
                if (operand.Size is { } size)
                    return Value.OfSize(SymExpr.Const(0) - size);
                return Unsupported(expr, "negate tensors with Scale(x, -1f)");
            case BinaryExpr binary:
                var left = Evaluate(binary.Left);
                var right = Evaluate(binary.Right);
                if (!left.IsValid || !right.IsValid)
                    return Value.Invalid;
                if (left.Size is { } l && right.Size is { } r)
                {
                    var result = binary.Operator switch { "+" => l + r, "-" => l - r, "*" => l * r, _ => l.DivideBy(r) };
                    return result is null ? Unsupported(expr, "a size can only be divided by a product of dims") : Value.OfSize(result);
                }
                return Unsupported(expr, "tensors combine with + and * only; sizes with + - * /");
            case OpCallExpr call:
                return Op(call);
            case SubCallExpr sub:
                if (sub.Indexed)
                    return Unsupported(expr, "an indexed submodule is only called inside the layer loop");
                return Call(sub, OpKind.Call) is { } id ? Value.OfNode(id) : Value.Invalid;
        }
        return Unsupported(expr, "not part of the DSL subset");
    }

    private Value Name(NameExpr name)
    {
        if (_locals.TryGetValue(name.Name, out var local))
            return Value.OfNode(local);
        if (_params.TryGetValue(name.Name, out var existing))
            return Value.OfNode(existing);
        var param = _module.Params.FirstOrDefault(p => p.Field == name.Name);
        if (param is not null)
        {
            var shape = new List<SymExpr>();
            foreach (var text in param.Shape)
            {
                var dim = ParseDim(text, param.Location, allowInputDims: false);
                if (dim is null)
                    return Value.Invalid;
                shape.Add(dim);
            }
            var id = Add(OpKind.Param, param.Field, OpGroup.Leaf, Array.Empty<int>(), new[] { param.CheckpointName }, shape, DType.F32,
                param.Location, param.Field);
            _params[name.Name] = id;
            return Value.OfNode(id);
        }
        if (_scope.Known.TryGetValue(name.Name, out var dimValue))
            return Value.OfSize(dimValue);
        if (_module.Consts.Any(c => c.Name == name.Name))
            return Value.OfConst(name.Name);
        Report(DiagnosticDescriptors.UnknownName, name.Location, name.Name, _module.Name);
        return Value.Invalid;
    }

    private SymExpr? ParseDim(string text, LocationInfo? location, bool allowInputDims = true)
    {
        var value = _scope.Parse(text, out var error, out var unknown);
        if (value is not null && !allowInputDims)
        {
            var inputDim = value.Symbols.FirstOrDefault(s => _dims.Any(d => d.Name == s && d.Kind == "input"));
            if (inputDim is not null)
            {
                Report(DiagnosticDescriptors.UnknownDim, location, inputDim, _module.Name);
                return null;
            }
        }
        if (value is null)
        {
            if (unknown is not null)
                Report(DiagnosticDescriptors.UnknownDim, location, unknown, _module.Name);
            else
                Report(DiagnosticDescriptors.InvalidDimExpression, location, text, error ?? "invalid");
        }
        return value;
    }

    private int Add(OpKind kind, string op, OpGroup group, IEnumerable<int> inputs, IEnumerable<string> attrs,
        IEnumerable<SymExpr> shape, DType dtype, LocationInfo? location, string source)
    {
        var id = _nodes.Count;
        _nodes.Add(new Node(id, kind, op, group, inputs.ToEquatableArray(), attrs.ToEquatableArray(), shape.ToEquatableArray(),
            dtype, location?.Line ?? 0, Squash(source)));
        return id;
    }

    private Value Unsupported(Expr expr, string why)
    {
        Report(DiagnosticDescriptors.UnsupportedExpression, expr.Location, expr.Text, why);
        return Value.Invalid;
    }

    private void Report(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, LocationInfo? location, params string[] args) =>
        _diagnostics.Add(DiagnosticInfo.Create(descriptor, location, args));

    private string Show(int node) => _scope.Display(_nodes[node].Shape);

    private static bool IsIdentifier(string text) =>
        text.Length > 0 && (char.IsLetter(text[0]) || text[0] == '_') && text.All(c => char.IsLetterOrDigit(c) || c == '_');

    private static string Squash(string text) => string.Join(" ", text.Split(new[] { ' ', '\r', '\n', '\t' }, StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The value of an expression: a tensor node, an integer size, a float literal or a [Const] name.</summary>
    private readonly struct Value
    {
        private Value(int? node, SymExpr? size, string? literal, bool valid, string? constName = null)
        {
            Node = node;
            Size = size;
            Float = literal;
            IsValid = valid;
            Const = constName;
        }

        public int? Node { get; }
        public SymExpr? Size { get; }
        public string? Float { get; }
        /// <summary>The name of a [Const] field: a float known only when the runner binds the config.</summary>
        public string? Const { get; }
        public bool IsValid { get; }

        public static Value Invalid => new(null, null, null, false);
        public static Value OfNode(int id) => new(id, null, null, true);
        public static Value OfSize(SymExpr size) => new(null, size, null, true);
        public static Value OfFloat(string literal) => new(null, null, literal, true);
        public static Value OfConst(string name) => new(null, null, null, true, name);
    }
}
