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
}
