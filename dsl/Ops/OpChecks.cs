namespace Qwen2VL.Dsl;

/// <summary>Argument checks shared by the reference ops: every message names the op and the shapes involved.</summary>
internal static class OpChecks
{
    public static ArgumentException Error(string op, string problem) => new($"{op}: {problem}");

    public static string S(Tensor t) => Tensor.Format(t.Shape);

    public static void Rank(string op, string name, Tensor t, int rank)
    {
        if (t.Rank != rank)
            throw Error(op, $"{name} must have rank {rank}, got shape {S(t)}");
    }

    public static void MinRank(string op, string name, Tensor t, int rank)
    {
        if (t.Rank < rank)
            throw Error(op, $"{name} must have rank >= {rank}, got shape {S(t)}");
    }

    /// <summary>Normalises an axis that may be negative (counted from the end).</summary>
    public static int Axis(string op, Tensor t, int axis)
    {
        int a = axis < 0 ? axis + t.Rank : axis;
        if (a < 0 || a >= t.Rank)
            throw Error(op, $"axis {axis} out of range for shape {S(t)}");
        return a;
    }

    /// <summary>The integer value of an element of an i64 tensor (stored as a double).</summary>
    public static long Int(string op, string name, double v)
    {
        if (v != Math.Floor(v) || double.IsInfinity(v))
            throw Error(op, $"{name} holds the non-integer value {v}");
        return (long)v;
    }
}
