namespace Qwen2VL.Dsl;

public static partial class Ops
{
    // Vision 2-D rotary: x [N,H,D]; pos [N,2] = (h, w) patch coordinates. inv_freq[k] = 1/theta^(2k/(D/2)), k < D/4.
    // Pair d with d + D/2 (rotate_half). d mod D/2 < D/4 uses h·inv_freq[d mod D/4], else w·inv_freq[d mod D/4].
    [Op(OpGroup.Rotary, "x:[N,H,D]; pos:[N,2]:i64 -> [N,H,D]", Grad = "dx = VisionRotaryBackward(dy, pos, theta)")]
    public static Tensor VisionRotary(Tensor x, Tensor pos, float theta)
    {
        const string op = nameof(VisionRotary);
        OpChecks.Rank(op, "x", x, 3);
        OpChecks.Rank(op, "pos", pos, 2);
        int n = x.Shape[0], heads = x.Shape[1], d = x.Shape[2];
        if (pos.Shape[0] != n || pos.Shape[1] != 2)
            throw OpChecks.Error(op, $"pos {OpChecks.S(pos)} must be [{n}, 2] for x {OpChecks.S(x)}");
        if (d % 4 != 0) throw OpChecks.Error(op, $"head dim of x {OpChecks.S(x)} must be a multiple of 4");
        int half = d / 2, quarter = d / 4;
        var invFreq = new double[quarter];
        for (int k = 0; k < quarter; k++) invFreq[k] = 1.0 / Math.Pow(theta, 2.0 * k / half);

        var angles = new double[n * half];
        for (int p = 0; p < n; p++)
        {
            double ph = OpChecks.Int(op, "pos", pos.Data[p * 2]), pw = OpChecks.Int(op, "pos", pos.Data[p * 2 + 1]);
            for (int j = 0; j < half; j++)
                angles[p * half + j] = (j < quarter ? ph : pw) * invFreq[j % quarter];
        }
        return RotateHalf(x, n, heads, d, angles);
    }

    // Decoder M-RoPE: x [B,S,H,D]; pos [3,B,S] (t,h,w). inv_freq[k] = 1/theta^(2k/D), k < D/2; frequency k uses
    // axis 0 for k < sT, axis 1 for k < sT+sH, axis 2 otherwise; rotate_half pairs d and d + D/2.
    [Op(OpGroup.Rotary, "x:[B,S,H,D]; pos:[3,B,S]:i64 -> [B,S,H,D]", Grad = "dx = MRopeBackward(dy, pos, theta, sectionT, sectionH, sectionW)")]
    public static Tensor MRope(Tensor x, Tensor pos, float theta, int sectionT, int sectionH, int sectionW)
    {
        const string op = nameof(MRope);
        OpChecks.Rank(op, "x", x, 4);
        OpChecks.Rank(op, "pos", pos, 3);
        int b = x.Shape[0], s = x.Shape[1], heads = x.Shape[2], d = x.Shape[3];
        if (pos.Shape[0] != 3 || pos.Shape[1] != b || pos.Shape[2] != s)
            throw OpChecks.Error(op, $"pos {OpChecks.S(pos)} must be [3, {b}, {s}] for x {OpChecks.S(x)}");
        int half = d / 2;
        if (d % 2 != 0 || sectionT < 0 || sectionH < 0 || sectionW < 0 || sectionT + sectionH + sectionW != half)
            throw OpChecks.Error(op, $"sections [{sectionT}, {sectionH}, {sectionW}] must sum to D/2 = {half} for x {OpChecks.S(x)}");

        int tokens = b * s;
        var angles = new double[tokens * half];
        for (int t = 0; t < tokens; t++)
            for (int k = 0; k < half; k++)
            {
                int axis = k < sectionT ? 0 : k < sectionT + sectionH ? 1 : 2;
                double p = OpChecks.Int(op, "pos", pos.Data[axis * tokens + t]);
                angles[t * half + k] = p / Math.Pow(theta, 2.0 * k / d);
            }
        return RotateHalf(x, tokens, heads, d, angles);
    }

    /// <summary>
    /// x·cos + rotate_half(x)·sin with rotate_half(u) = [−u[D/2:], u[:D/2]]: dims d and d + D/2 rotate as a pair
    /// by angles[token, d] (the same angle for every head).
    /// </summary>
    private static Tensor RotateHalf(Tensor x, int tokens, int heads, int d, double[] angles)
    {
        int half = d / 2;
        var y = new double[x.Count];
        for (int t = 0; t < tokens; t++)
            for (int j = 0; j < half; j++)
            {
                double c = Math.Cos(angles[t * half + j]), sn = Math.Sin(angles[t * half + j]);
                for (int h = 0; h < heads; h++)
                {
                    int baseIdx = (t * heads + h) * d;
                    double a = x.Data[baseIdx + j], bb = x.Data[baseIdx + j + half];
                    y[baseIdx + j] = a * c - bb * sn;
                    y[baseIdx + j + half] = bb * c + a * sn;
                }
            }
        return new Tensor((int[])x.Shape.Clone(), y);
    }

    // The rotations' backward ops: a rotation's transpose is the rotation by the opposite angle.

    /// <summary>VisionRotary's input gradient: dy rotated by −angle.</summary>
    [Op(OpGroup.Rotary, "dy:[N,H,D]; pos:[N,2]:i64 -> [N,H,D]")]
    public static Tensor VisionRotaryBackward(Tensor dy, Tensor pos, float theta) => Unrotate(VisionRotary(Unrotate(dy), pos, theta));

    /// <summary>MRope's input gradient: dy rotated by −angle.</summary>
    [Op(OpGroup.Rotary, "dy:[B,S,H,D]; pos:[3,B,S]:i64 -> [B,S,H,D]")]
    public static Tensor MRopeBackward(Tensor dy, Tensor pos, float theta, int sectionT, int sectionH, int sectionW) =>
        Unrotate(MRope(Unrotate(dy), pos, theta, sectionT, sectionH, sectionW));

    /// <summary>
    /// Swaps the halves of the last axis: with u' = [u[D/2:], u[:D/2]], rotating u' by an angle and swapping back rotates
    /// u by the opposite angle (the pair (a, b) ↦ (a·c − b·s, b·c + a·s) becomes (a·c + b·s, b·c − a·s)).
    /// </summary>
    private static Tensor Unrotate(Tensor x)
    {
        int d = x.Shape[^1], half = d / 2;
        var y = new double[x.Count];
        for (int o = 0; o < x.Count; o += d)
            for (int j = 0; j < half; j++)
            {
                y[o + j] = x.Data[o + j + half];
                y[o + j + half] = x.Data[o + j];
            }
        return new Tensor((int[])x.Shape.Clone(), y, x.DType);
    }
}
