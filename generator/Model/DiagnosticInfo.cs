using Microsoft.CodeAnalysis;

namespace Qwen2VL.Generator.Model;

/// <summary>A diagnostic as data: descriptor id, message arguments and where it lands.</summary>
public sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> Arguments)
{
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, LocationInfo? location, params string[] args) =>
        new(descriptor.Id, location, args.ToEquatableArray());

    public Diagnostic ToDiagnostic()
    {
        var descriptor = Diagnostics.DiagnosticDescriptors.ById(Id);
        return Diagnostic.Create(descriptor, Location?.ToLocation() ?? Microsoft.CodeAnalysis.Location.None, Arguments.ToArray<object>());
    }
}

internal static class ArrayExtensions
{
    public static T[] ToArray<T>(this EquatableArray<string> items) where T : class
    {
        var result = new T[items.Count];
        for (var i = 0; i < items.Count; i++)
            result[i] = (T)(object)items[i];
        return result;
    }
}
