using Qwen2VL.Runtime;

namespace Qwen2VL.Model.Training.Data;

/// <summary>
/// Bad training data: a JSONL line that is not valid, a placeholder count that does not match the media lists, a
/// sample longer than the packing budget. One line naming the file and line; the CLI prints it with exit code 2.
/// </summary>
public sealed class TrainingDataException : ModelException
{
    public TrainingDataException(string message) : base(message) { }

    public TrainingDataException(string message, Exception inner) : base(message, inner) { }
}
