using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Qwen2VL.Generator.Model;

/// <summary>A source location without any reference to a syntax tree, so models stay cacheable.</summary>
public sealed record LocationInfo(string FilePath, TextSpan Span, LinePositionSpan LineSpan)
{
    public static LocationInfo? From(SyntaxNode? node) => From(node?.GetLocation());

    public static LocationInfo? From(Location? location)
    {
        if (location is null || location.SourceTree is null)
            return null;
        return new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
    }

    public int Line => LineSpan.Start.Line + 1;

    public Location ToLocation() => Location.Create(FilePath, Span, LineSpan);
}
