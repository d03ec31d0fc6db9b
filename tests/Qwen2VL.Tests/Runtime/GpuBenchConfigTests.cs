using Qwen2VL.Runtime.Aot;
using Qwen2VL.Tests.Text;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>The GPU benchmark's PyTorch side builds the same model as <c>qwen2vl compile --config 2b</c>.</summary>
public sealed class GpuBenchConfigTests
{
    [Fact]
    public void TheBenchmarks2bConfig_IsTheBuiltIn2bConfig()
    {
        string bench = File.ReadAllText(Path.Combine(TokenizerTestData.RepoRoot, "bench", "gpu", "qwen2vl-2b.config.json"));
        Assert.Equal(BuiltInConfigs.Get("2b").ReplaceLineEndings("\n").Trim(), bench.ReplaceLineEndings("\n").Trim());
    }
}
