using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace Qwen2VL.Generator.Model;

/// <summary>
/// A symbolic size: a Laurent polynomial over dim symbols with rational coefficients, kept in a canonical
/// form so that equal sizes compare equal (<c>3*Embed</c>, <c>Heads*(Embed/Heads)</c> = <c>Embed</c>).
/// </summary>
public sealed class SymExpr : IEquatable<SymExpr>
{
    private readonly Term[] _terms; // sorted by monomial key, no zero coefficients

    private SymExpr(Term[] terms) => _terms = terms;

    public static SymExpr Const(long value) => value == 0 ? new SymExpr([]) : new SymExpr([new Term(value, 1, [])]);

    public static SymExpr Symbol(string name) => new([new Term(1, 1, [new Power(name, 1)])]);

    public bool IsConstant => _terms.Length == 0 || (_terms.Length == 1 && _terms[0].Powers.Length == 0);

    public long? ConstantValue =>
        _terms.Length == 0 ? 0 : IsConstant && _terms[0].Den == 1 ? _terms[0].Num : null;

    public IEnumerable<string> Symbols => _terms.SelectMany(t => t.Powers.Select(p => p.Symbol)).Distinct();

    public static SymExpr operator +(SymExpr a, SymExpr b) => Normalize(a._terms.Concat(b._terms));

    public static SymExpr operator -(SymExpr a, SymExpr b) => Normalize(a._terms.Concat(b._terms.Select(t => t.Negate())));

    public static SymExpr operator *(SymExpr a, SymExpr b) =>
        Normalize(from x in a._terms from y in b._terms select x.Times(y));

    /// <summary>Division by a monomial (a single term); null when the divisor is a sum or zero.</summary>
    public SymExpr? DivideBy(SymExpr divisor)
    {
        if (divisor._terms.Length != 1)
            return null;
        var inverse = divisor._terms[0].Inverse();
        return Normalize(_terms.Select(t => t.Times(inverse)));
    }

    /// <summary>Replaces symbols by expressions (used to apply a submodule's dims to the caller's).</summary>
    public SymExpr Substitute(Func<string, SymExpr?> lookup)
    {
        var result = Const(0);
        foreach (var term in _terms)
        {
            var product = new SymExpr([new Term(term.Num, term.Den, [])]);
            foreach (var power in term.Powers)
            {
                var replacement = lookup(power.Symbol) ?? Symbol(power.Symbol);
                for (var i = 0; i < Math.Abs(power.Exponent); i++)
                    product = power.Exponent > 0 ? product * replacement : product.DivideBy(replacement) ?? product * Symbol("?");
            }
            result += product;
        }
        return result;
    }

    public bool Equals(SymExpr? other) => other is not null && _terms.SequenceEqual(other._terms);

    public override bool Equals(object? obj) => Equals(obj as SymExpr);

    public override int GetHashCode() => _terms.Aggregate(19, (h, t) => unchecked(h * 31 + t.GetHashCode()));

    /// <summary>Readable form used in diagnostics and dumps: <c>3*Embed</c>, <c>N/4</c>, <c>Embed/Heads</c>.</summary>
    public override string ToString() => Render(csharp: false);

    /// <summary>
    /// A C# int expression evaluating the size at run time from locals named like the symbols. Products are
    /// formed before the division so exact divisions stay exact; a product that is divided afterwards is formed in
    /// 64 bits (<c>(int)((long)B * Hidden * KvHeads * S / Heads)</c>), since it can pass 2^31 where the quotient does
    /// not (72B at 32K tokens: B·Hidden·KvHeads·S = 2^31). The quotient is a buffer's size or an index bound, which
    /// the runner checks against 2^31 − 1 at bind time (<see cref="ToCSharpLong"/>).
    /// </summary>
    public string ToCSharp() => Render(csharp: true);

    /// <summary>The same value as a C# long expression: every product formed in 64 bits (for the bind-time size checks).</summary>
    public string ToCSharpLong() => Render(csharp: true, asLong: true);

    private string Render(bool csharp, bool asLong = false)
    {
        if (_terms.Length == 0)
            return "0";
        var sb = new StringBuilder();
        for (var i = 0; i < _terms.Length; i++)
        {
            var term = _terms[i];
            var text = term.Render(csharp, asLong, out var negative);
            if (i == 0)
                sb.Append(negative ? "-" + text : text);
            else
                sb.Append(negative ? " - " : " + ").Append(text);
        }
        return csharp && _terms.Length > 1 ? "(" + sb + ")" : sb.ToString();
    }

    private static SymExpr Normalize(IEnumerable<Term> terms)
    {
        var merged = new SortedDictionary<string, Term>(StringComparer.Ordinal);
        foreach (var term in terms)
        {
            var key = term.Key;
            merged[key] = merged.TryGetValue(key, out var existing) ? existing.Add(term) : term;
        }
        return new SymExpr(merged.Values.Where(t => t.Num != 0).ToArray());
    }

    private readonly record struct Power(string Symbol, int Exponent);

    private sealed class Term : IEquatable<Term>
    {
        public Term(long num, long den, Power[] powers)
        {
            if (den < 0) { num = -num; den = -den; }
            var g = Gcd(Math.Abs(num), den);
            Num = g == 0 ? num : num / g;
            Den = g == 0 ? den : den / g;
            Powers = powers.Where(p => p.Exponent != 0).OrderBy(p => p.Symbol, StringComparer.Ordinal).ToArray();
            Key = string.Join("*", Powers.Select(p => p.Symbol + "^" + p.Exponent));
        }

        public long Num { get; }
        public long Den { get; }
        public Power[] Powers { get; }
        public string Key { get; }

        public Term Negate() => new(-Num, Den, Powers);

        public Term Add(Term other) => new(Num * other.Den + other.Num * Den, Den * other.Den, Powers);

        public Term Times(Term other)
        {
            var exps = new Dictionary<string, int>();
            foreach (var p in Powers.Concat(other.Powers))
                exps[p.Symbol] = (exps.TryGetValue(p.Symbol, out var e) ? e : 0) + p.Exponent;
            return new Term(Num * other.Num, Den * other.Den, exps.Select(kv => new Power(kv.Key, kv.Value)).ToArray());
        }

        public Term Inverse() => new(Den, Num, Powers.Select(p => new Power(p.Symbol, -p.Exponent)).ToArray());

        public string Render(bool csharp, bool asLong, out bool negative)
        {
            negative = Num < 0;
            var numerator = new List<string>();
            var denominator = new List<string>();
            if (Math.Abs(Num) != 1 || Powers.All(p => p.Exponent < 0))
                numerator.Add(Math.Abs(Num).ToString());
            if (Den != 1)
                denominator.Add(Den.ToString());
            foreach (var p in Powers)
                for (var i = 0; i < Math.Abs(p.Exponent); i++)
                    (p.Exponent > 0 ? numerator : denominator).Add(p.Symbol);
            var sep = csharp ? " * " : "*";
            var top = string.Join(sep, numerator);
            // 64-bit products: always for ToCSharpLong, and for an int product of two or more factors that is divided.
            bool wide = csharp && (asLong || (numerator.Count > 1 && denominator.Count > 0));
            if (wide)
                top = "(long)" + top;
            if (denominator.Count == 0)
                return top;
            var bottom = string.Join(sep, denominator);
            if (csharp)
            {
                var quotient = denominator.Count > 1 ? $"{top} / ({bottom})" : $"{top} / {bottom}";
                return wide && !asLong ? $"(int)({quotient})" : quotient;
            }
            return denominator.Count > 1 ? $"{top}/({bottom})" : $"{top}/{bottom}";
        }

        public bool Equals(Term? other) => other is not null && Num == other.Num && Den == other.Den && Key == other.Key;

        public override bool Equals(object? obj) => Equals(obj as Term);

        public override int GetHashCode() => unchecked((Num.GetHashCode() * 31 + Den.GetHashCode()) * 31 + Key.GetHashCode());

        private static long Gcd(long a, long b)
        {
            while (b != 0) (a, b) = (b, a % b);
            return a;
        }
    }
}
