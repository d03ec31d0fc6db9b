using System.Text;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>Every malformed file gives a SafetensorsException that names the file and, where there is one, the tensor.</summary>
public class SafetensorsCorruptionTests
{
    private static string OpenError(byte[] bytes)
    {
        using var dir = new TempDirectory();
        string path = dir.File("model.safetensors");
        File.WriteAllBytes(path, bytes);
        return Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose()).Message;
    }

    /// <summary>8-byte length + header text + <paramref name="dataBytes"/> zero bytes of data.</summary>
    private static byte[] Build(string header, int dataBytes, ulong? declaredLength = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BitConverter.GetBytes(declaredLength ?? (ulong)json.Length).CopyTo(bytes, 0);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    [Fact]
    public void FileShorterThanHeaderLength() =>
        Assert.Equal("model.safetensors: file is 5 bytes, too short for the 8-byte header length", OpenError(new byte[5]));

    [Fact]
    public void EmptyFile() =>
        Assert.Equal("model.safetensors: file is 0 bytes, too short for the 8-byte header length", OpenError([]));

    [Fact]
    public void HeaderLengthPastEndOfFile() =>
        Assert.Equal("model.safetensors: header length 1000 runs past the end of the file (12 bytes; truncated?)",
            OpenError(Build("{}  ", 0, declaredLength: 1000)));

    [Fact]
    public void AbsurdHeaderLength() =>
        Assert.StartsWith("model.safetensors: header length 18446744073709551615 is larger than the 100 MB limit",
            OpenError(Build("{}", 0, declaredLength: ulong.MaxValue)));

    [Fact]
    public void TruncatedDataSection() =>
        Assert.Equal("model.safetensors: tensor 'x' data_offsets [0, 48] run past the data section (40 bytes)",
            OpenError(Build("""{"x":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}}""", 40)));

    [Fact]
    public void HeaderIsNotJson() =>
        Assert.StartsWith("model.safetensors: header is not valid JSON (line 1",
            OpenError(Build("""{"x": {"dtype": "F32",""", 0)));

    [Fact]
    public void HeaderIsNotAnObject() =>
        Assert.Equal("model.safetensors: header is a JSON array, expected an object", OpenError(Build("[1, 2]", 0)));

    [Fact]
    public void UnknownDtype() =>
        Assert.Equal("model.safetensors: tensor 'x' has unsupported dtype 'F8_E4M3' (supported: F32, BF16, F16, I64, I32, U8)",
            OpenError(Build("""{"x":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}""", 4)));

    [Fact]
    public void MissingShape() =>
        Assert.Equal("model.safetensors: tensor 'x' has no array 'shape'",
            OpenError(Build("""{"x":{"dtype":"F32","data_offsets":[0,4]}}""", 4)));

    [Fact]
    public void NegativeOffset() =>
        Assert.Equal("model.safetensors: tensor 'x' 'data_offsets' holds -4, expected non-negative integers",
            OpenError(Build("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 4)));

    [Fact]
    public void BeginAfterEnd() =>
        Assert.Equal("model.safetensors: tensor 'x' data_offsets [8, 4] begin after end",
            OpenError(Build("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8)));

    [Fact]
    public void SizeDoesNotMatchShape() =>
        Assert.Equal("model.safetensors: tensor 'x.weight' data_offsets [0, 100] do not match shape [3, 4] of F32 (48 bytes)",
            OpenError(Build("""{"x.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,100]}}""", 100)));

    [Fact]
    public void OverlappingTensors() =>
        Assert.Equal("model.safetensors: tensor 'b' data_offsets [8, 24] overlap tensor 'a' [0, 16]",
            OpenError(Build("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", 24)));

    [Fact]
    public void MetadataMustHoldStrings() =>
        Assert.Equal("model.safetensors: __metadata__ entry 'n' is a JSON number, expected a string",
            OpenError(Build("""{"__metadata__":{"n":3}}""", 0)));

    [Fact]
    public void MissingFileIsReported()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(dir.File("nope.safetensors")));
        Assert.StartsWith("nope.safetensors: file not found", e.Message);
    }
}
