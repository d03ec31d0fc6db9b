namespace Qwen2VL.Dsl;

/// <summary>
/// Evaluates the dim expressions written in <see cref="ParamAttribute"/> shapes and <see cref="SubmoduleAttribute.Count"/>:
/// integer literals, dim names, <c>+ - * /</c> (integer division, as the C# dim properties compute) and parentheses,
/// e.g. <c>"3*Embed"</c>, <c>"Embed/Heads"</c>, <c>"16"</c>.
/// </summary>
public static class DimExpression
{
    public static int Evaluate(string expression, Func<string, int?> dim)
    {
        var parser = new Parser(expression, dim);
        long value = parser.Sum();
        parser.SkipSpaces();
        if (!parser.AtEnd) throw parser.Error("unexpected text");
        return checked((int)value);
    }

    private sealed class Parser(string text, Func<string, int?> dim)
    {
        private int _pos;

        public bool AtEnd => _pos >= text.Length;

        public FormatException Error(string problem) =>
            new($"dim expression \"{text}\": {problem} at position {_pos}");

        public void SkipSpaces()
        {
            while (!AtEnd && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        public long Sum()
        {
            long v = Product();
            while (true)
            {
                SkipSpaces();
                if (AtEnd || (text[_pos] != '+' && text[_pos] != '-')) return v;
                char op = text[_pos++];
                long r = Product();
                v = op == '+' ? v + r : v - r;
            }
        }

        private long Product()
        {
            long v = Atom();
            while (true)
            {
                SkipSpaces();
                if (AtEnd || (text[_pos] != '*' && text[_pos] != '/')) return v;
                char op = text[_pos++];
                long r = Atom();
                if (op == '/' && r == 0) throw Error("division by zero");
                v = op == '*' ? v * r : v / r;
            }
        }

        private long Atom()
        {
            SkipSpaces();
            if (AtEnd) throw Error("expression ends early");
            char c = text[_pos];
            if (c == '(')
            {
                _pos++;
                long v = Sum();
                SkipSpaces();
                if (AtEnd || text[_pos] != ')') throw Error("missing ')'");
                _pos++;
                return v;
            }
            int start = _pos;
            if (char.IsDigit(c))
            {
                while (!AtEnd && char.IsDigit(text[_pos])) _pos++;
                return long.Parse(text.AsSpan(start, _pos - start));
            }
            if (char.IsLetter(c) || c == '_')
            {
                while (!AtEnd && (char.IsLetterOrDigit(text[_pos]) || text[_pos] == '_')) _pos++;
                string name = text[start.._pos];
                return dim(name) ?? throw Error($"unknown dim '{name}'");
            }
            throw Error($"unexpected '{c}'");
        }
    }
}
