namespace Qwen2VL.Runtime;

/// <summary>
/// Sizes computed from numbers in files (shapes, grids, layouts) are multiplied here, checked: a hostile file must
/// not wrap a product into a small positive number that passes the next bounds test.
/// </summary>
public static class CheckedSize
{
    /// <summary>The product, or null when it overflows a long (or a factor is negative).</summary>
    public static long? Product(IEnumerable<long> factors)
    {
        long product = 1;
        foreach (long f in factors)
        {
            if (f < 0) return null;
            try { product = checked(product * f); }
            catch (OverflowException) { return null; }
        }
        return product;
    }

    /// <summary>The product as an element count one array can hold, or a <see cref="ModelException"/> naming <paramref name="what"/>.</summary>
    public static int ArrayLength(string what, params long[] factors)
    {
        long? n = Product(factors);
        if (n is null || n > Array.MaxLength)
            throw new ModelException($"{what}: {string.Join(" × ", factors)} elements is more than one array can hold");
        return (int)n;
    }
}
