using System.Buffers.Binary;
using System.IO.Compression;
using Qwen2VL.Model.Processing;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// Finding 4: image files of a few bytes that asked for gigabytes. Decoding is bounded before ImageSharp allocates:
/// an animated GIF's frames × canvas, a PNG's compressed text (not read at all), a PNG that ends early or claims
/// more pixels than its data can hold.
/// </summary>
public sealed class ImageLimitTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Sample => Path.Combine(AppContext.BaseDirectory, "shapes-model", "sample.png");

    private static long Allocated(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    /// <summary>An animated GIF of <paramref name="frames"/> 1×1 frames on a <paramref name="size"/>² canvas (~20 bytes a frame).</summary>
    private static byte[] GifBomb(int size, int frames)
    {
        var gif = new MemoryStream();
        gif.Write("GIF89a"u8);
        Span<byte> screen = stackalloc byte[7];
        BinaryPrimitives.WriteUInt16LittleEndian(screen, (ushort)size);
        BinaryPrimitives.WriteUInt16LittleEndian(screen[2..], (ushort)size);
        gif.Write(screen); // no global colour table
        for (int i = 0; i < frames; i++)
        {
            gif.Write([0x21, 0xF9, 0x04, 0x00, 0x0A, 0x00, 0x00, 0x00]);                 // 0.1 s a frame
            gif.Write([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0x80, 0, 0, 0, 0xFF, 0, 0]);         // 1×1 at (0,0), 2-colour local table
            gif.Write([0x02, 0x02, 0x44, 0x01, 0x00]);                                   // LZW: clear, 0, end
        }
        gif.WriteByte(0x3B);
        return gif.ToArray();
    }

    [Fact]
    public void AGifOfTinyFramesOnAHugeCanvasIsRefusedBeforeDecoding()
    {
        var path = _dir.File("bomb.gif");
        File.WriteAllBytes(path, GifBomb(4000, 60));
        Assert.True(new FileInfo(path).Length < 2000);
        long bytes = Allocated(() =>
        {
            var e = Assert.Throws<PreprocessingException>(() => VideoLoader.LoadGif(path));
            Assert.Contains("60 frames on a 4000x4000 canvas", e.Message);
        });
        Assert.True(bytes < 16 << 20, $"refusing the GIF allocated {bytes} bytes");

        // As an image only its first frame is decoded: one canvas, not sixty.
        bytes = Allocated(() => Assert.Equal(4000, RgbImage.Load(path).Width));
        Assert.True(bytes < 400L << 20, $"decoding the first frame allocated {bytes} bytes");

        var r = InProcessCli.Run("generate", "--video", path, "--prompt", "What happens?");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
    }

    [Fact]
    public void APngsCompressedTextIsNotInflated()
    {
        var png = File.ReadAllBytes(Sample);
        var zeros = new MemoryStream();
        using (var z = new ZLibStream(zeros, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var block = new byte[1 << 20];
            for (int i = 0; i < 64; i++) z.Write(block);
        }
        byte[] data = [.. "Comment"u8, 0, 0, .. zeros.ToArray()];
        var path = _dir.File("text.png");
        File.WriteAllBytes(path, InsertBeforeIend(png, "zTXt", data));
        var expected = RgbImage.Load(Sample);
        RgbImage? got = null;
        long bytes = Allocated(() => got = RgbImage.Load(path));
        Assert.Equal(expected.Rgb, got!.Rgb);
        Assert.True(bytes < 8 << 20, $"decoding a PNG with 64 MB of compressed text allocated {bytes} bytes");
    }

    [Fact]
    public void ATruncatedPngOrOneClaimingMorePixelsThanItsDataIsRefused()
    {
        var png = File.ReadAllBytes(Sample);
        var cut = _dir.File("cut.png");
        File.WriteAllBytes(cut, png[..^20]);
        var e = Assert.Throws<PreprocessingException>(() => RgbImage.Load(cut));
        Assert.Contains("truncated PNG", e.Message);

        // The sample's own pixel data under a header that claims 9000×9000.
        var big = (byte[])png.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(big.AsSpan(16), 9000);
        BinaryPrimitives.WriteUInt32BigEndian(big.AsSpan(20), 9000);
        var liar = _dir.File("liar.png");
        File.WriteAllBytes(liar, big);
        long bytes = Allocated(() =>
        {
            var error = Assert.Throws<PreprocessingException>(() => RgbImage.Load(liar));
            Assert.Contains("cannot hold a 9000x9000 image", error.Message);
        });
        Assert.True(bytes < 8 << 20, $"refusing allocated {bytes} bytes");
    }

    private static byte[] InsertBeforeIend(byte[] png, string type, byte[] data)
    {
        int iend = png.AsSpan().LastIndexOf("IEND"u8) - 4;
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        System.Text.Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return [.. png[..iend], .. chunk, .. png[iend..]];
    }

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }
}
