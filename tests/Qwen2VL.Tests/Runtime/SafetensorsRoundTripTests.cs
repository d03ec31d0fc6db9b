using System.Runtime.InteropServices;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

public class SafetensorsRoundTripTests
{
    [Fact]
    public void EveryDtypeRoundTripsThroughWriterAndReader()
    {
        using var dir = new TempDirectory();
        string path = dir.File("all.safetensors");
        float[] f32 = [1.5f, -2.25f, 3e-5f, 1e30f, -0f, 7f];
        float[] bf16Exact = [1.5f, -2.25f, 0.0673828125f, 256f]; // all representable in bf16
        float[] f16Exact = [0.5f, -1024f, 0.0009765625f, 3.140625f];
        long[] i64 = [long.MinValue, -1, 0, 1L << 40];
        int[] i32 = [int.MaxValue, -7, 0];
        byte[] u8 = [0, 1, 255, 128, 7, 9];
        SafetensorsWriter.Write(path,
        [
            SafetensorsEntry.F32("a.f32", f32, 2, 3),
            SafetensorsEntry.BF16("b.bf16", bf16Exact, 4),
            SafetensorsEntry.F16("c.f16", f16Exact, 2, 2),
            SafetensorsEntry.I64("d.i64", i64, 4),
            SafetensorsEntry.I32("e.i32", i32, 3, 1),
            SafetensorsEntry.U8("f.u8", u8, 6),
            SafetensorsEntry.F32("g.scalar", [42f]),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(7, file.Tensors.Count);
        Assert.Equal([2L, 3L], file.Tensors["a.f32"].Shape);
        Assert.Equal(SafetensorsDType.BF16, file.Tensors["b.bf16"].DType);
        Assert.Equal(f32, file.ReadFloat32("a.f32"));
        Assert.Equal(bf16Exact, file.ReadFloat32("b.bf16"));
        Assert.Equal(f16Exact, file.ReadFloat32("c.f16"));
        Assert.Equal(i64, file.ReadInt64("d.i64"));
        Assert.Equal(i64.Select(v => (float)v).ToArray(), file.ReadFloat32("d.i64"));
        Assert.Equal(i32.Select(v => (long)v).ToArray(), file.ReadInt64("e.i32"));
        Assert.Equal(u8.Select(v => (long)v).ToArray(), file.ReadInt64("f.u8"));
        Assert.Equal(u8.Select(v => (float)v).ToArray(), file.ReadFloat32("f.u8"));
        Assert.Equal(u8, file.ReadBytes("f.u8"));
        Assert.Equal([42f], file.ReadFloat32("g.scalar"));
        Assert.Empty(file.Tensors["g.scalar"].Shape);
        Assert.Equal(MemoryMarshal.AsBytes(f32.AsSpan()).ToArray(), file.GetBytes("a.f32").ToArray());
        // The header is padded so the data section starts 8-byte aligned.
        long headerLength = BitConverter.ToInt64(File.ReadAllBytes(path), 0);
        Assert.Equal(0, (8 + headerLength) % 8);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void Bf16WriterRoundsToNearestEven()
    {
        using var dir = new TempDirectory();
        string path = dir.File("r.safetensors");
        // 1 + 2^-8 lies exactly between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
        // 1 + 3·2^-8 lies between 1 + 2^-7 and 1 + 2^-6: ties go to even (1 + 2^-6).
        SafetensorsWriter.Write(path, [SafetensorsEntry.BF16("x", [1f + 1f / 256, 1f + 3f / 256, 1f + 1f / 256 + 1f / 4096], 3)]);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal([1f, 1f + 1f / 64, 1f + 1f / 128], file.ReadFloat32("x"));
    }

    [Fact]
    public void LongBf16TensorsWidenExactlyIncludingTheScalarTail()
    {
        using var dir = new TempDirectory();
        string path = dir.File("long.safetensors");
        // 1000 values already representable in bf16 (8 significant bits), negative and tiny ones included.
        float[] values = Enumerable.Range(0, 1000).Select(i => (i % 2 == 0 ? 1 : -1) * (1 + (i % 128) / 128f) * MathF.Pow(2, i % 40 - 20)).ToArray();
        SafetensorsWriter.Write(path, [SafetensorsEntry.BF16("x", values, 10, 100)]);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal(values, file.ReadFloat32("x"));
    }

    [Fact]
    public void WriterOverwritesAtomicallyAndRejectsBadEntries()
    {
        using var dir = new TempDirectory();
        string path = dir.File("w.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsEntry.F32("x", [1f], 1)]);
        SafetensorsWriter.Write(path, [SafetensorsEntry.F32("y", [2f, 3f], 2)]);
        using (SafetensorsFile file = SafetensorsFile.Open(path))
            Assert.Equal([2f, 3f], file.ReadFloat32("y"));

        var bad = Assert.Throws<SafetensorsException>(() =>
            SafetensorsWriter.Write(dir.File("bad.safetensors"), [SafetensorsEntry.F32("x", [1f, 2f], 3)]));
        Assert.Equal("bad.safetensors: tensor 'x' has 8 bytes, shape [3] of F32 needs 12", bad.Message);
        Assert.False(File.Exists(dir.File("bad.safetensors")));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void UnknownTensorNameListsCloseNames()
    {
        using var dir = new TempDirectory();
        string path = dir.File("m.safetensors");
        SafetensorsWriter.Write(path,
        [
            SafetensorsEntry.F32("blocks.0.attn.weight", [1f], 1),
            SafetensorsEntry.F32("blocks.1.attn.weight", [1f], 1),
            SafetensorsEntry.F32("zzzzzzzzzzzzzzzzzzzzzzzz", [1f], 1),
        ]);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        var e = Assert.Throws<SafetensorsException>(() => file.ReadFloat32("blocks.0.attn.wieght"));
        Assert.StartsWith("m.safetensors: no tensor 'blocks.0.attn.wieght'; close names: 'blocks.0.attn.weight', 'blocks.1.attn.weight'", e.Message);
    }

    [Fact]
    public void TinyFixtureCheckpointReadsAsBf16WithExpectedShapes()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2vl-tiny", "model.safetensors");
        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.All(file.Tensors.Values, t => Assert.Equal(SafetensorsDType.BF16, t.DType));
        Assert.Equal([32L, 3, 2, 14, 14], file.Tensors["visual.patch_embed.proj.weight"].Shape);
        Assert.Equal([96L, 32], file.Tensors["visual.blocks.0.attn.qkv.weight"].Shape);
        Assert.Equal([512L, 64], file.Tensors["lm_head.weight"].Shape);
        Assert.Equal([512L, 64], file.Tensors["model.embed_tokens.weight"].Shape);
        // First values read with an independent Python struct-based reader of the same file.
        float[] patch = file.ReadFloat32("visual.patch_embed.proj.weight");
        Assert.Equal(32 * 3 * 2 * 14 * 14, patch.Length);
        Assert.Equal([-0.0673828125f, -0.0693359375f, -0.0150146484375f], patch[..3]);
    }
}
