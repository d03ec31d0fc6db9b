using System.Diagnostics;
using System.IO.Compression;
using Qwen2VL.Model.Text;
using Xunit;

namespace Qwen2VL.Tests.Text;

/// <summary>Paths of the tokenizer test data checked in under <c>tests/tokenizer/</c> and <c>tests/fixtures/</c>.</summary>
public static class TokenizerTestData
{
    /// <summary>The repository root: the first folder above the test binaries that holds the solution file.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Qwen2VlDir => Path.Combine(RepoRoot, "tests", "tokenizer", "qwen2-vl");

    public static string PairsDir => Path.Combine(Qwen2VlDir, "tests");

    public static string TinyTokenizerPath =>
        Path.Combine(RepoRoot, "tests", "fixtures", "qwen2vl-tiny-tokenizer", "tokenizer.json");

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Qwen2VL.Compiler.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Qwen2VL.Compiler.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>The test classes that share one <see cref="Qwen2TokenizerFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class RealTokenizerCollection : ICollectionFixture<Qwen2TokenizerFixture>
{
    public const string Name = "Real Qwen2-VL tokenizer";
}

/// <summary>
/// The real Qwen2-VL tokenizer, decompressed once from <c>tokenizer.json.gz</c> into a temp folder and loaded once
/// for all tests of <see cref="RealTokenizerCollection"/>. Records how long <see cref="Qwen2Tokenizer.Load"/> took.
/// </summary>
public sealed class Qwen2TokenizerFixture : IDisposable
{
    private readonly string _dir;

    public Qwen2TokenizerFixture()
    {
        _dir = Path.Combine(Path.GetTempPath(), "qwen2vl-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        TokenizerJsonPath = Path.Combine(_dir, "tokenizer.json");
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(TokenizerTestData.Qwen2VlDir, "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var file = File.Create(TokenizerJsonPath))
            gz.CopyTo(file);
        var watch = Stopwatch.StartNew();
        Tokenizer = Qwen2Tokenizer.Load(TokenizerJsonPath);
        LoadTime = watch.Elapsed;
    }

    public string TokenizerJsonPath { get; }

    public Qwen2Tokenizer Tokenizer { get; }

    public TimeSpan LoadTime { get; }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
