namespace Qwen2VL.Runtime;

/// <summary>
/// A problem with the user's input (checkpoint, config, device choice) rather than a bug.
/// The message is one line that names the problem; the CLI prints it without a stack trace.
/// </summary>
public class ModelException : Exception
{
    public ModelException(string message) : base(message) { }
    public ModelException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A safetensors file is missing, truncated or malformed, or a tensor in it cannot be read as asked.</summary>
public class SafetensorsException : ModelException
{
    public SafetensorsException(string message) : base(message) { }
    public SafetensorsException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A config.json is missing, not JSON, or lacks / mistypes a key the model needs.</summary>
public class ConfigException : ModelException
{
    public ConfigException(string message) : base(message) { }
    public ConfigException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A checkpoint lacks a weight the model needs, or stores it with another shape.</summary>
public class WeightException : ModelException
{
    public WeightException(string message) : base(message) { }
    public WeightException(string message, Exception inner) : base(message, inner) { }
}
