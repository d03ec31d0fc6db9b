using System.Numerics.Tensors;

namespace Qwen2VL.Runtime.Distributed;

/// <summary>
/// The deterministic reduction every host backend uses: element i of the result is ((x₀ + x₁) + x₂) + … over the
/// ranks' contributions in rank order. F32 folds in float32 (TensorPrimitives.Add is elementwise, so vector width does
/// not change the bits); F64 in float64; BF16 and F16 widen to float32, fold, and round to 16 bits once at the end
/// (round to nearest, ties to even), which is more accurate than rounding after every hop.
/// </summary>
public static class RankOrderSum
{
    /// <summary>
    /// destination ← Σ contributions in order. <paramref name="contribution"/>(r) gives rank r's elements (host memory,
    /// destination's count); destination may be one of the contributions (it is read before it is written).
    /// </summary>
    public static void Fold(CommDType dtype, int ranks, Func<int, CommBuffer> contribution, CommBuffer destination)
    {
        int n = destination.Count;
        switch (dtype)
        {
            case CommDType.F32:
            {
                // Accumulate in a scratch so that an in-place destination is not overwritten before it is read.
                float[] acc = new float[n];
                contribution(0).Elements<float>().CopyTo(acc);
                for (int r = 1; r < ranks; r++) TensorPrimitives.Add(acc, contribution(r).Elements<float>(), acc);
                acc.CopyTo(destination.Elements<float>());
                break;
            }
            case CommDType.F64:
            {
                double[] acc = new double[n];
                contribution(0).Elements<double>().CopyTo(acc);
                for (int r = 1; r < ranks; r++) TensorPrimitives.Add(acc, contribution(r).Elements<double>(), acc);
                acc.CopyTo(destination.Elements<double>());
                break;
            }
            case CommDType.BF16:
            case CommDType.F16:
            {
                bool bf16 = dtype == CommDType.BF16;
                float[] acc = new float[n];
                for (int r = 0; r < ranks; r++)
                {
                    Span<ushort> x = contribution(r).Elements<ushort>();
                    for (int i = 0; i < n; i++)
                    {
                        float xi = bf16 ? BF16ToFloat(x[i]) : (float)BitConverter.UInt16BitsToHalf(x[i]);
                        acc[i] = r == 0 ? xi : acc[i] + xi; // start from x₀ itself, so −0 stays −0 as in the F32 fold
                    }
                }
                Span<ushort> d = destination.Elements<ushort>();
                for (int i = 0; i < n; i++) d[i] = bf16 ? FloatToBF16(acc[i]) : BitConverter.HalfToUInt16Bits((Half)acc[i]);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    public static float BF16ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>float32 → bfloat16 bits, round to nearest, ties to even; NaN stays a quiet NaN (as <see cref="Training.Bf16.Round"/>).</summary>
    public static ushort FloatToBF16(float x) => (ushort)(BitConverter.SingleToUInt32Bits(Training.Bf16.Round(x)) >> 16);
}
