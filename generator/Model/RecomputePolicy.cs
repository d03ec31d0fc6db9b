namespace Qwen2VL.Generator.Model;

/// <summary>
/// The recompute policy of a module as the generator sees it: the bits of <c>Qwen2VL.Dsl.RecomputeOps</c>, and which
/// op group each bit covers (a table: a group missing here is never recomputed).
/// </summary>
public static class RecomputePolicy
{
    public const int Norms = 1;
    public const int Activations = 2;
    public const int Softmax = 4;
    public const int Rotary = 8;
    public const int CheapOps = Norms | Activations | Softmax | Rotary;

    /// <summary>The policy bit that covers an op group, or 0 (matmul, attention, movement: always kept).</summary>
    public static int BitOf(OpGroup opGroup) => opGroup switch
    {
        OpGroup.Norm => Norms,
        OpGroup.Elementwise => Activations,
        OpGroup.Reduce => Softmax,
        OpGroup.Rotary => Rotary,
        OpGroup.Leaf or OpGroup.Matmul or OpGroup.Attention or OpGroup.Movement or OpGroup.Collective or OpGroup.Call => 0,
    };

    /// <summary>"Norms | Activations" for dumps and comments.</summary>
    public static string Describe(int policy)
    {
        if (policy == 0)
            return "None";
        if (policy == CheapOps)
            return "CheapOps";
        var names = new System.Collections.Generic.List<string>();
        if ((policy & Norms) != 0) names.Add("Norms");
        if ((policy & Activations) != 0) names.Add("Activations");
        if ((policy & Softmax) != 0) names.Add("Softmax");
        if ((policy & Rotary) != 0) names.Add("Rotary");
        return string.Join(" | ", names);
    }
}
