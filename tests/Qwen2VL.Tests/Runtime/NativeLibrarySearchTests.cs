using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using Qwen2VL.Runtime;
using Xunit;

namespace Qwen2VL.Tests.Runtime;

/// <summary>Finding libcuda, cuBLAS and NCCL, on fake library files laid out as on real machines.</summary>
public sealed class NativeLibrarySearchTests
{
    private static string Touch(string path, string content = "not a shared library")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void CandidatesAreTheBareNamesThenEachPlaceInOrderNewestNameFirst()
    {
        using var temp = new TempDirectory();
        string a = temp.File("a"), missing = temp.File("missing"), b = temp.File("b");
        Touch(Path.Combine(a, "libx.so.12"));
        Touch(Path.Combine(b, "libx.so.13"));
        Touch(Path.Combine(b, "libx.so.12"));
        var search = new NativeLibrarySearch("libx", ["libx.so.13", "libx.so.12"], [a, missing, b], "install libx");

        Assert.Equal(["libx.so.13", "libx.so.12", Path.Combine(a, "libx.so.12"), Path.Combine(b, "libx.so.13"), Path.Combine(b, "libx.so.12")],
            search.Candidates());
    }

    [Fact]
    public void LoadTakesTheFirstCandidateThatLoads()
    {
        using var temp = new TempDirectory();
        string a = Touch(temp.File("a/libx.so.12")), b13 = Touch(temp.File("b/libx.so.13"));
        Touch(temp.File("b/libx.so.12"));
        var tried = new List<string>();
        var search = new NativeLibrarySearch("libx", ["libx.so.13", "libx.so.12"], [temp.File("a"), temp.File("b")], "install libx");

        LoadedNativeLibrary loaded = search.Load(path =>
        {
            tried.Add(path);
            return path == b13 ? 42 : throw new DllNotFoundException("no");
        });

        Assert.Equal(b13, loaded.Path);
        Assert.Equal(42, loaded.Handle);
        Assert.Equal(["libx.so.13", "libx.so.12", a, b13], tried);
    }

    [Fact]
    public void NothingLoads_OneLineNamingTheNamesThePlacesAndTheLoadersReason()
    {
        using var temp = new TempDirectory();
        string broken = Touch(temp.File("a/libqvl-absent.so.12")); // exists, but is text: the real loader refuses it
        var search = new NativeLibrarySearch("libqvl", ["libqvl-absent.so.13", "libqvl-absent.so.12"], [temp.File("a"), temp.File("b")], "install libqvl");

        var e = Assert.Throws<NativeLibraryNotFoundException>(() => search.Load());

        Assert.StartsWith($"libqvl not found: tried libqvl-absent.so.13, libqvl-absent.so.12 on the system loader's path and in {temp.File("a")}, {temp.File("b")}; {broken} exists but did not load (", e.Message);
        Assert.EndsWith("); install libqvl", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.IsAssignableFrom<ModelException>(e);
        Assert.Null(search.TryLoad(out string? error));
        Assert.Equal(e.Message, error);
    }

    [Fact]
    public void ARealLibraryInAPlaceLoadsByItsPath()
    {
        // A link named like a versioned library, to one the runtime has loaded already: dlopen hands back that handle.
        string real = Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "libSystem.Native.so");
        Assert.True(File.Exists(real), real);
        using var temp = new TempDirectory();
        string link = temp.File("lib/libqvl-fake.so.2");
        Directory.CreateDirectory(temp.File("lib"));
        File.CreateSymbolicLink(link, real);

        LoadedNativeLibrary loaded = new NativeLibrarySearch("fake", ["libqvl-fake.so.2"], [temp.File("lib")], "-").Load();

        Assert.Equal(link, loaded.Path);
        Assert.NotEqual(IntPtr.Zero, loaded.Handle);
    }

    [Fact]
    public void CublasComesFromTheOverrideThenTheToolkitThenPyTorchsWheels()
    {
        using var temp = new TempDirectory();
        string site = temp.File("venv/lib/python3.12/site-packages");
        string overrideDir = temp.File("mine");
        var expected = new[]
        {
            Touch(Path.Combine(overrideDir, "libcublas.so.12")),
            Touch(temp.File("cuda/lib64/libcublas.so.13")),
            Touch(Path.Combine(site, "nvidia/cu13/lib/libcublas.so.13")),   // CUDA 13 wheels: one nvidia/cu13/lib
            Touch(Path.Combine(site, "nvidia/cublas/lib/libcublas.so.12")), // CUDA 12 wheels: one folder per library
            Touch(Path.Combine(site, "torch/lib/libcublas.so.12")),         // older PyTorch wheels bundled it
        };
        var env = Env(temp, ("VIRTUAL_ENV", temp.File("venv")), ("CUDA_HOME", temp.File("cuda")), (NativeLibraries.PathVariable, overrideDir));

        var found = NativeLibraries.Cublas(env).Candidates().Where(c => c.StartsWith(temp.Path, StringComparison.Ordinal));

        Assert.Equal(expected, found);
        Assert.Equal(["libcublas.so.13", "libcublas.so.12"], NativeLibraries.Cublas(env).Candidates().Take(2));
    }

    [Fact]
    public void CublasLtAndNcclAreFoundInTheWheelsOfPythonPath()
    {
        using var temp = new TempDirectory();
        string site = temp.File("site");
        string lt = Touch(Path.Combine(site, "nvidia/cublas/lib/libcublasLt.so.12"));
        string nccl = Touch(Path.Combine(site, "nvidia/nccl/lib/libnccl.so.2"));
        var env = Env(temp, ("PYTHONPATH", site));

        Assert.Contains(lt, NativeLibraries.CublasLt(env).Candidates());
        Assert.Contains(nccl, NativeLibraries.Nccl(env).Candidates());
        Assert.Equal("libnccl.so.2", NativeLibraries.Nccl(env).Candidates()[0]);
    }

    [Fact]
    public void AVirtualEnvironmentWhosePythonIsOnPath_IsSearchedWithoutBeingActivated()
    {
        // As on the GPU machines: python3 is /opt/torch/.venv/bin/python3, VIRTUAL_ENV unset.
        using var temp = new TempDirectory();
        string venv = temp.File("opt/torch/.venv");
        Touch(Path.Combine(venv, "bin/python3"));
        Touch(Path.Combine(venv, "pyvenv.cfg"), "home = /usr/bin");
        string lib = Touch(Path.Combine(venv, "lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13"));
        Touch(temp.File("plain/bin/python3")); // a bin folder that is no virtual environment adds nothing
        var env = Env(temp, ("PATH", $"{temp.File("plain/bin")}:{venv}/bin/"));

        Assert.Equal([Path.GetDirectoryName(lib)], NativeLibraries.PythonWheelDirectories(env).Where(d => d.StartsWith(temp.Path, StringComparison.Ordinal)));
        Assert.Contains(lib, NativeLibraries.Cublas(env).Candidates());
    }

    [Fact]
    public void TheDriverIsLibcudaSo1FirstAndNeverFromWheelsOrStubs()
    {
        using var temp = new TempDirectory();
        string mine = Touch(temp.File("mine/libcuda.so.1"));
        Touch(temp.File("venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcuda.so.1"));
        Touch(temp.File("cuda/lib64/stubs/libcuda.so"));
        var env = Env(temp, (NativeLibraries.PathVariable, temp.File("mine")), ("VIRTUAL_ENV", temp.File("venv")), ("CUDA_HOME", temp.File("cuda")));
        NativeLibrarySearch search = NativeLibraries.CudaDriver(env);

        Assert.Equal(["libcuda.so.1", "libcuda.so", mine], search.Candidates().Where(c => !Path.IsPathRooted(c) || c.StartsWith(temp.Path, StringComparison.Ordinal)));

        var e = Assert.Throws<NativeLibraryNotFoundException>(() => search.Load(_ => throw new DllNotFoundException("fake: invalid ELF header")));
        Assert.StartsWith($"the CUDA driver library (libcuda) not found: tried libcuda.so.1, libcuda.so on the system loader's path and in {temp.File("mine")}, /usr/local/nvidia/lib64, /usr/lib/wsl/lib, ", e.Message);
        Assert.EndsWith($"; {mine} exists but did not load (fake: invalid ELF header); install the NVIDIA driver, or use --device cpu", e.Message);
    }

    [Fact]
    public void IlgpuImportsTheDriverAsCuda()
    {
        // The premise of the resolver: ILGPU's P/Invoke names "cuda", which .NET probes as libcuda.so, never libcuda.so.1.
        // (LibraryImport generates the P/Invoke as a local function, so look for the entry point, not the method name.)
        var imports = typeof(Context).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Select(m => m.GetCustomAttribute<DllImportAttribute>())
            .Where(a => a?.EntryPoint == "cuInit")
            .Select(a => a!.Value)
            .ToArray();
        Assert.Contains(IlgpuCudaImport.ImportName, imports);
    }

    [Fact]
    public void TheResolverAnswersOnlyIlgpusCudaImport()
    {
        var driver = new LoadedNativeLibrary("libcuda", "/fake/libcuda.so.1", 7);
        int asked = 0;
        Func<LoadedNativeLibrary?> find = () => { asked++; return driver; };
        Assembly ilgpu = typeof(Context).Assembly;

        Assert.Equal(0, IlgpuCudaImport.Resolve(typeof(NativeLibrarySearchTests).Assembly, "cuda", find));
        Assert.Equal(0, IlgpuCudaImport.Resolve(ilgpu, "nvml", find));
        Assert.Equal(0, asked);
        Assert.Equal(7, IlgpuCudaImport.Resolve(ilgpu, "cuda", find));
        Assert.Equal(0, IlgpuCudaImport.Resolve(ilgpu, "cuda", () => null)); // nothing found: the usual DllNotFoundException follows
    }

    /// <summary>An environment with only the given variables (HOME pointing into the temp folder, so ~/.local is empty).</summary>
    private static Func<string, string?> Env(TempDirectory temp, params (string Name, string Value)[] variables)
    {
        var map = variables.ToDictionary(v => v.Name, v => v.Value);
        map.TryAdd("HOME", temp.File("home"));
        return name => map.GetValueOrDefault(name);
    }
}
