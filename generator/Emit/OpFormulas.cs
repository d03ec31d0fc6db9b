using System.Collections.Generic;
using System.Linq;
using Qwen2VL.Generator.Model;

namespace Qwen2VL.Generator.Emit;

/// <summary>The scalar formulas of the elementwise ops a graph uses, from their [Op] declarations.</summary>
internal sealed class OpFormulas(Graph graph)
{
    private readonly Dictionary<string, OpInfo> _ops = graph.Ops.ToDictionary(o => o.Name);

    /// <summary>The formula and its names: tensor parameters first (operand order), then scalar parameters (attrs).</summary>
    public (string Formula, IReadOnlyList<string> Names) Of(Node node)
    {
        var op = _ops[node.Op];
        var names = op.Parameters.Where(p => p.Kind is "Tensor" or "OptionalTensor").Select(p => p.Name)
            .Concat(op.Parameters.Where(p => p.Kind is "Float" or "Int").Select(p => p.Name)).ToList();
        return (op.Scalar ?? "", names);
    }
}
