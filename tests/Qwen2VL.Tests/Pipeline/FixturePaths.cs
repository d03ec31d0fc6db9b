namespace Qwen2VL.Tests.Pipeline;

/// <summary>Where the copied Hugging Face fixtures live next to the test binaries.</summary>
internal static class FixturePaths
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny");

    public static string Model => Path.Combine(Root, "model.safetensors");

    public static string Config => Path.Combine(Root, "config.json");

    public static string Case(string name, string file) => Path.Combine(Root, "cases", name, file);
}
