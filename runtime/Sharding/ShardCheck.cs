namespace Qwen2VL.Runtime;

/// <summary>
/// The bind-time checks behind the generated <c>CheckTensorParallel</c> of each module's shard plan: the tensor-parallel
/// degree must divide the groups every sharded param splits into (heads, KV heads, features, vocabulary rows).
/// </summary>
public static class ShardCheck
{
    public static void Degree(int degree)
    {
        if (degree < 1) throw new ModelException($"the tensor-parallel degree must be 1 or more, got {degree}");
    }

    /// <param name="tensor">The checkpoint name of the sharded param.</param>
    /// <param name="shard">Its split (Column, Row, Vocab).</param>
    /// <param name="dim">The groups it respects, as the error names them (e.g. <c>KvHeads (num_key_value_heads)</c>).</param>
    /// <param name="size">Their number under this config.</param>
    /// <param name="degree">The tensor-parallel degree.</param>
    public static void Divides(string tensor, string shard, string dim, long size, int degree)
    {
        if (size % degree != 0)
            throw new ModelException($"tensor-parallel degree {degree} does not divide {dim} = {size} ({tensor} is {shard.ToLowerInvariant()}-parallel)");
    }
}
