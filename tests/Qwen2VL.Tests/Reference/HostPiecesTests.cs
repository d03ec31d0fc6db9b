using Qwen2VL.Dsl;
using Qwen2VL.Model.Reference;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reference;

public class HostPiecesTests(TinyFixture fixture) : IClassFixture<TinyFixture>
{
    [Fact]
    public void CheckpointNames_ResolveLegacyAndNewSpellings()
    {
        var legacy = new HashSet<string> { "visual.blocks.0.norm1.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight" };
        var modern = new HashSet<string> { "model.visual.blocks.0.norm1.weight", "model.language_model.layers.0.mlp.up_proj.weight", "lm_head.weight" };
        Assert.Equal("visual.blocks.0.norm1.weight", CheckpointNames.Resolve("visual.blocks.0.norm1.weight", legacy));
        Assert.Equal("model.visual.blocks.0.norm1.weight", CheckpointNames.Resolve("visual.blocks.0.norm1.weight", modern));
        Assert.Equal("model.language_model.layers.0.mlp.up_proj.weight", CheckpointNames.Resolve("model.layers.0.mlp.up_proj.weight", modern));
        Assert.Equal("lm_head.weight", CheckpointNames.Resolve("lm_head.weight", modern));
        Assert.Null(CheckpointNames.Resolve("model.norm.weight", modern));
    }

    [Fact]
    public void ConfigView_ReadsFlatNestedAndAliasedKeys()
    {
        var nested = new ConfigView(ModelConfig.Parse("""
            { "image_token_id": 7, "hidden_size": 999,
              "text_config": { "hidden_size": 64, "rope_parameters": { "mrope_section": [2, 3, 3] } },
              "vision_config": { "in_chans": 3, "spatial_patch_size": 14 } }
            """, "config.json"));
        Assert.Equal(64, nested.GetInt("hidden_size"));
        Assert.Equal(3, nested.GetInt("rope_scaling.mrope_section.1"));
        Assert.Equal(7, nested.GetInt("image_token_id"));
        Assert.Equal(3, nested.GetInt("vision_config.in_channels"));
        Assert.Equal(14, nested.GetInt("vision_config.patch_size"));
        Assert.Null(nested.Lookup("vision_config.depth"));
        var e = Assert.Throws<ConfigException>(() => nested.GetInt("num_hidden_layers"));
        Assert.Contains("num_hidden_layers", e.Message);

        var flat = fixture.Model.Config;
        Assert.Equal(2, flat.GetInt("rope_scaling.mrope_section.0"));
        Assert.Equal(64, flat.GetInt("vision_config.hidden_size"));
        Assert.False(flat.GetBool("tie_word_embeddings", true));
    }

    [Fact]
    public void VisionGeometry_FollowsSpecChecklist()
    {
        // Spec §12.2: grid (1, 4, 6) rows ↔ (0,0),(0,1),(1,0),(1,1),(0,2),(0,3),(1,2),(1,3),(0,4),(0,5),(1,4),(1,5),(2,0)…
        var pos = ReferenceVisionGeometry.PatchPositions([new GridThw(1, 4, 6)], 2);
        Assert.Equal([0L, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3, 0, 4, 0, 5, 1, 4, 1, 5, 2, 0], pos[..26]);
        // Spec §12.5.
        Assert.Equal([0L, 256, 280, 304, 328], ReferenceVisionGeometry.CuSeqlens([new GridThw(1, 16, 16), new GridThw(3, 4, 6)]));
    }

    [Fact]
    public void Embed_TokenCountMismatch_NamesBothCounts()
    {
        var m = fixture.Model;
        long[] ids = [500, 502, 502, 501];
        var e = Assert.Throws<ModelException>(() => m.Embed(ids, 1, 4, Tensor.Zeros(3, 64), null));
        Assert.Contains("2 image tokens", e.Message);
        Assert.Contains("3 image embeddings", e.Message);
        Assert.Throws<ModelException>(() => m.Embed([503, 1], 1, 2, null, null));
    }

    [Fact]
    public void Load_ReadsNewSpellingCheckpoint()
    {
        string src = Path.Combine(AppContext.BaseDirectory, TinyFixture.Dir);
        string dir = Path.Combine(Path.GetTempPath(), "qwen2vl-ref-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(src, "config.json"), Path.Combine(dir, "config.json"));
            using (var f = SafetensorsFile.Open(Path.Combine(src, "model.safetensors")))
            {
                var entries = f.Tensors.Values.Select(t => new SafetensorsEntry(
                    t.Name.StartsWith("visual.") ? "model." + t.Name
                    : t.Name.StartsWith("model.") ? "model.language_model." + t.Name["model.".Length..] : t.Name,
                    t.DType, t.Shape, f.ReadBytes(t.Name))).ToList();
                SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries);
            }
            var m = ReferenceModel.Load(dir);
            Assert.Equal(fixture.Model.LmHead.Data, m.LmHead.Data);
            Assert.Equal(fixture.Model.Vision.Blocks[1].Fc2W.Data, m.Vision.Blocks[1].Fc2W.Data);
            Assert.Equal(fixture.Model.Layers[1].DownW.Data, m.Layers[1].DownW.Data);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Load_MissingTensor_IsAWeightErrorNamingIt()
    {
        string src = Path.Combine(AppContext.BaseDirectory, TinyFixture.Dir);
        var config = ConfigView.Load(Path.Combine(src, "config.json"));
        using var f = SafetensorsFile.Open(Path.Combine(src, "model.safetensors"));
        var e = Assert.Throws<WeightException>(() => ReferenceModel.Create(config, name =>
            name == "model.layers.1.mlp.up_proj.weight" || !f.Tensors.ContainsKey(name)
                ? null
                : (f.Info(name).Shape.Select(d => (int)d).ToArray(), Array.ConvertAll(f.ReadFloat32(name), v => (double)v))));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message);
    }
}
