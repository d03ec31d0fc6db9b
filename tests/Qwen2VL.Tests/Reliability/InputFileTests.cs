using System.Diagnostics;
using Qwen2VL.Runtime;
using Qwen2VL.Tests.Pipeline;
using Qwen2VL.Tests.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Reliability;

/// <summary>
/// Finding 2: files reached through symbolic links (every Hugging Face hub cache snapshot) load, with sizes from the
/// opened file, not the link; FIFOs and devices are refused at once instead of hanging or reading forever.
/// </summary>
public sealed class InputFileTests
{
    [Fact]
    public void AHubCacheSnapshotOfSymlinksLoadsAndRuns()
    {
        using var dir = new TempDirectory();
        // snapshots/<rev>/file -> ../../blobs/<sha>, as huggingface_hub lays a model out.
        var blobs = Directory.CreateDirectory(Path.Combine(dir.Path, "blobs")).FullName;
        var snapshot = Directory.CreateDirectory(Path.Combine(dir.Path, "snapshots", "rev")).FullName;
        foreach (var file in new[] { "config.json", "model.safetensors", "preprocessor_config.json" })
        {
            var blob = Path.Combine(blobs, "sha-" + file);
            File.Copy(Path.Combine(FixturePaths.Root, file), blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, file), Path.Combine("..", "..", "blobs", "sha-" + file));
        }
        var inputs = Path.Combine(dir.Path, "inputs.safetensors");
        File.CreateSymbolicLink(inputs, FixturePaths.Case("a_image_text", "inputs.safetensors"));

        using (var weights = SafetensorsFile.Open(Path.Combine(snapshot, "model.safetensors")))
            Assert.NotEmpty(weights.Tensors);
        var r = InProcessCli.Run("forward", "--model", snapshot, "--inputs", inputs, "--out", dir.File("out.safetensors"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(File.Exists(dir.File("out.safetensors")));
    }

    [Fact]
    public void AFifoIsRefusedAtOnceAndADeviceLinkIsRefusedInOneLine()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDirectory();
        var fifo = dir.File("fifo.png");
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<ModelException>(() => InputFile.RequireRegular(fifo, "fifo.png"));
        Assert.Contains("is a FIFO, not a regular file", e.Message);
        var r = InProcessCli.Run("generate", "--image", fifo, "--prompt", "hi", "--max-new-tokens", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("FIFO", r.Stderr);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "opening a FIFO must not wait for a writer");

        var model = Directory.CreateDirectory(dir.File("model")).FullName;
        File.Copy(Path.Combine(FixturePaths.Root, "config.json"), Path.Combine(model, "config.json"));
        File.CreateSymbolicLink(Path.Combine(model, "model.safetensors"), "/dev/zero");
        r = InProcessCli.Run("forward", "--model", model, "--inputs", FixturePaths.Case("a_image_text", "inputs.safetensors"), "--out", dir.File("o.safetensors"));
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("character device, not a regular file", r.Stderr);
        Assert.False(File.Exists(dir.File("o.safetensors")));
    }
}
