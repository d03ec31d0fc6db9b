namespace Qwen2VL.Dsl;

public static partial class Ops
{
    /// <summary>Row lookup: ids [*B] (i64) into table [V, H] → [*B, H]. An id outside [0, V) is an error.</summary>
    [Op(OpGroup.Movement, "ids:[*B]:i64; table:[V,H] -> [*B,H]", Grad = "dtable[ids[r]] += dy[r]")]
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
}
