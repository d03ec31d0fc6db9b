using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public class WeightStoreTests
{
    private static void WriteShardedCheckpoint(TempDirectory dir)
    {
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"),
        [
            SafetensorsEntry.F32("a.weight", [1, 2, 3, 4, 5, 6], 2, 3),
            SafetensorsEntry.BF16("a.bias", [0.5f, -1.5f], 2),
        ]);
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"),
        [
            SafetensorsEntry.F32("b.weight", [7, 8, 9], 3),
        ]);
        File.WriteAllText(dir.File("model.safetensors.index.json"), """
        {
          "metadata": { "total_size": 40 },
          "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "a.bias": "model-00001-of-00002.safetensors",
            "b.weight": "model-00002-of-00002.safetensors"
          }
        }
        """);
    }

    [Fact]
    public void ShardedIndexResolvesEveryWeight()
    {
        using var dir = new TempDirectory();
        WriteShardedCheckpoint(dir);
        using WeightStore store = WeightStore.OpenDirectory(dir.Path);
        Assert.Equal(["a.bias", "a.weight", "b.weight"], store.Names.Order(StringComparer.Ordinal));
        Assert.Equal([7f, 8f, 9f], store.ReadFloat32("b.weight"));
        Assert.Equal([0.5f, -1.5f], store.ReadFloat32("a.bias"));
        Assert.Equal([2L, 3L], store.Info("a.weight").Shape);

        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        using DeviceTensor w = store.Load(ctx, "a.weight", 2, 3);
        Assert.Equal([2, 3], w.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], w.Span.ToArray());
    }

    [Fact]
    public void ShapeMismatchAndMissingWeightsAreNamed()
    {
        using var dir = new TempDirectory();
        WriteShardedCheckpoint(dir);
        using WeightStore store = WeightStore.OpenDirectory(dir.Path);
        using ComputeContext ctx = ComputeContext.Create(DeviceKind.Cpu);
        Assert.Equal("a.weight: checkpoint shape [2, 3], model expects [2, 4]",
            Assert.Throws<WeightException>(() => store.Load(ctx, "a.weight", 2, 4)).Message);
        Assert.StartsWith("weight 'c.weight' not found in model.safetensors.index.json; close names: 'a.weight', 'b.weight'",
            Assert.Throws<WeightException>(() => store.Load(ctx, "c.weight")).Message);
        Assert.False(store.Contains("c.weight"));
    }

    [Fact]
    public void ResolverMapsModelNamesToStoredNames()
    {
        using var dir = new TempDirectory();
        WriteShardedCheckpoint(dir);
        using WeightStore store = WeightStore.OpenDirectory(dir.Path);
        store.Resolver = name => name.StartsWith("model.", StringComparison.Ordinal) ? name["model.".Length..] : name;
        Assert.True(store.Contains("model.b.weight"));
        Assert.Equal([7f, 8f, 9f], store.ReadFloat32("model.b.weight"));
        Assert.StartsWith("weight 'model.x' (stored as 'x') not found",
            Assert.Throws<WeightException>(() => store.Info("model.x")).Message);
    }

    [Fact]
    public void MissingShardFilesAreListed()
    {
        using var dir = new TempDirectory();
        WriteShardedCheckpoint(dir);
        File.Delete(dir.File("model-00002-of-00002.safetensors"));
        Assert.Equal("model.safetensors.index.json lists shard files that are missing: model-00002-of-00002.safetensors",
            Assert.Throws<WeightException>(() => WeightStore.OpenDirectory(dir.Path)).Message);
    }

    [Fact]
    public void MalformedIndexIsReported()
    {
        using var dir = new TempDirectory();
        WriteShardedCheckpoint(dir);
        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map": {"a.weight": "../elsewhere.safetensors"}}""");
        Assert.Equal("model.safetensors.index.json: weight_map entry 'a.weight' must be a shard file name, got \"../elsewhere.safetensors\"",
            Assert.Throws<WeightException>(() => WeightStore.OpenDirectory(dir.Path)).Message);
        File.WriteAllText(dir.File("model.safetensors.index.json"), "{\n  \"weight_map\": {,\n}");
        Assert.StartsWith("model.safetensors.index.json: invalid JSON at line 2",
            Assert.Throws<WeightException>(() => WeightStore.OpenDirectory(dir.Path)).Message);
    }

    [Fact]
    public void DirectoryWithoutCheckpointIsReported()
    {
        using var dir = new TempDirectory();
        Assert.EndsWith(": neither model.safetensors nor model.safetensors.index.json found",
            Assert.Throws<WeightException>(() => WeightStore.OpenDirectory(dir.Path)).Message);
    }

    [Fact]
    public void SingleFileDirectoryUsesModelSafetensors()
    {
        using var dir = new TempDirectory();
        SafetensorsWriter.Write(dir.File("model.safetensors"), [SafetensorsEntry.F32("w", [1f, 2f], 2)]);
        using WeightStore store = WeightStore.OpenDirectory(dir.Path);
        Assert.Equal([1f, 2f], store.ReadFloat32("w"));
    }
}
