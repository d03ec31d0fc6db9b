namespace Qwen2VL.Runtime;

/// <summary>Checks, at a generated runner's entry, that an input tensor has the shape and type its [Shape] declares.</summary>
public static class ShapeCheck
{
    public static void Expect(string module, string name, DeviceTensor tensor, bool isInt, params int[] dims)
    {
        if (tensor.IsInt != isInt)
            throw new ModelException($"{module}.Forward: '{name}' must be an {(isInt ? "integer" : "float")} tensor, got {tensor}");
        if (tensor.Shape.Length != dims.Length || !tensor.Shape.AsSpan().SequenceEqual(dims))
            throw new ModelException($"{module}.Forward: '{name}' has shape [{string.Join(", ", tensor.Shape)}], expected [{string.Join(", ", dims)}]");
    }

    /// <summary>
    /// The bind-time error of a value too large for a device buffer: generated kernels index a buffer with 32-bit
    /// arithmetic (ILGPU's views), so one buffer holds at most 2^31 − 1 elements. Names the value, its dims and their values.
    /// </summary>
    public static ModelException TooLarge(string module, string value, string expression, long elements, string dims) =>
        new($"{module}: {value} needs {expression} = {elements} elements ({dims}); a device buffer holds at most {int.MaxValue} (32-bit indices)");
}
