namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>Row lookup: ids [*B] (i64) into table [V, H] → [*B, H]. An id outside [0, V) is an error.</summary>
    [Op(OpGroup.Movement, "ids:[*B]:i64; table:[V,H] -> [*B,H]", Grad = "dtable = EmbeddingBackward(dy, ids, table)")]
    public static Tensor Embedding(Tensor ids, Tensor table)
    {
        const string op = nameof(Embedding);
        OpChecks.Rank(op, "table", table, 2);
        int v = table.Shape[0], h = table.Shape[1];
        var y = new double[ids.Count * h];
        for (int i = 0; i < ids.Count; i++)
        {
            long id = OpChecks.Int(op, "ids", ids.Data[i]);
            if (id < 0 || id >= v)
                throw new ArgumentOutOfRangeException(nameof(ids), id,
                    $"{op}: token id {id} is outside the vocabulary [0, {v}) of table {OpChecks.S(table)}");
            Array.Copy(table.Data, id * h, y, (long)i * h, h);
        }
        return new Tensor(ids.Shape.Concat([h]).ToArray(), y);
    }

    /// <summary>Embedding's table gradient: each row of dy added into the table row its id read (repeated ids add up).</summary>
    [Op(OpGroup.Movement, "dy:[*B,H]; ids:[*B]:i64; table:[V,H] -> [V,H]")]
    public static Tensor EmbeddingBackward(Tensor dy, Tensor ids, Tensor table)
    {
        const string op = nameof(EmbeddingBackward);
        OpChecks.Rank(op, "table", table, 2);
        int v = table.Shape[0], h = table.Shape[1];
        if (dy.Count != ids.Count * h) throw OpChecks.Error(op, $"dy {OpChecks.S(dy)} does not match ids {OpChecks.S(ids)} and table {OpChecks.S(table)}");
        var dt = new double[table.Count];
        for (int i = 0; i < ids.Count; i++)
        {
            long id = OpChecks.Int(op, "ids", ids.Data[i]);
            if (id < 0 || id >= v) throw OpChecks.Error(op, $"token id {id} is outside [0, {v})");
            for (int j = 0; j < h; j++) dt[id * h + j] += dy.Data[i * h + j];
        }
        return new Tensor([v, h], dt);
    }
}
