using System.Runtime.InteropServices;

namespace Qwen2VL.Runtime;

/// <summary>
/// Where the NVIDIA libraries live on the machines the project meets: the driver's <c>libcuda.so.1</c> (the unversioned
/// <c>libcuda.so</c> comes only with the toolkit's developer package, so ILGPU's <c>DllImport("cuda")</c> often misses),
/// cuBLAS/cuBLASLt from a CUDA toolkit or from PyTorch's pip wheels (<c>site-packages/nvidia/&lt;pkg&gt;/lib</c>, or
/// <c>nvidia/cu13/lib</c> for CUDA 13 wheels), and NCCL likewise. <c>QWEN2VL_NATIVE_PATH</c> (directories separated by
/// ':') is searched before all of them.
/// </summary>
public static class NativeLibraries
{
    /// <summary>The environment variable naming extra directories to search first.</summary>
    public const string PathVariable = "QWEN2VL_NATIVE_PATH";

    /// <summary>The CUDA driver API. Never from a toolkit's <c>stubs/</c> folder: a stub loads and then fails cuInit.</summary>
    public static NativeLibrarySearch CudaDriver(Func<string, string?>? env = null) => new(
        "the CUDA driver library (libcuda)",
        OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"],
        [.. Override(env ?? Environment.GetEnvironmentVariable),
         // containers with the NVIDIA runtime, WSL, then the distribution's own library folders
         "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib", .. SystemLibraryDirectories()],
        "install the NVIDIA driver, or use --device cpu");

    /// <summary>cuBLAS (v2 API), CUDA 13 first, then 12.</summary>
    public static NativeLibrarySearch Cublas(Func<string, string?>? env = null) =>
        Toolkit("cuBLAS", OperatingSystem.IsWindows() ? ["cublas64_13.dll", "cublas64_12.dll"] : ["libcublas.so.13", "libcublas.so.12"], env,
            "install cuBLAS (CUDA toolkit, or pip install nvidia-cublas) or run without cuBLAS");

    /// <summary>cuBLASLt, the library cuBLAS itself depends on (matmul with epilogues), CUDA 13 first, then 12.</summary>
    public static NativeLibrarySearch CublasLt(Func<string, string?>? env = null) =>
        Toolkit("cuBLASLt", OperatingSystem.IsWindows() ? ["cublasLt64_13.dll", "cublasLt64_12.dll"] : ["libcublasLt.so.13", "libcublasLt.so.12"], env,
            "install cuBLAS (CUDA toolkit, or pip install nvidia-cublas)");

    /// <summary>NCCL 2.</summary>
    public static NativeLibrarySearch Nccl(Func<string, string?>? env = null) =>
        Toolkit("NCCL", ["libnccl.so.2"], env, "install NCCL (libnccl2, or pip install nvidia-nccl)");

    private static NativeLibrarySearch Toolkit(string what, string[] names, Func<string, string?>? env, string hint)
    {
        env ??= Environment.GetEnvironmentVariable;
        var directories = new List<string>(Override(env));
        foreach (string variable in (string[])["CUDA_HOME", "CUDA_PATH"])
            if (env(variable) is { Length: > 0 } root)
                directories.AddRange([Path.Combine(root, "lib64"), Path.Combine(root, "lib"), Path.Combine(root, "bin")]);
        directories.AddRange(["/usr/local/cuda/lib64", $"/usr/local/cuda/targets/{ToolkitTarget()}/lib"]);
        directories.AddRange(SystemLibraryDirectories());
        directories.AddRange(PythonWheelDirectories(env));
        return new NativeLibrarySearch(what, names, directories, hint);
    }

    /// <summary>
    /// The <c>lib</c> folders of NVIDIA's pip wheels (and PyTorch's own <c>torch/lib</c>) in every Python
    /// installation this process can see: <c>PYTHONPATH</c>, the active virtual or conda environment, a virtual
    /// environment whose <c>python3</c> is on <c>PATH</c>, the user's site-packages, then the system's. Folders sorted by name within one site-packages, so the order is stable.
    /// </summary>
    public static IReadOnlyList<string> PythonWheelDirectories(Func<string, string?> env)
    {
        var sitePackages = new List<string>();
        if (env("PYTHONPATH") is { Length: > 0 } pythonPath)
            sitePackages.AddRange(pythonPath.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        var prefixes = new List<string>();
        foreach (string variable in (string[])["VIRTUAL_ENV", "CONDA_PREFIX"])
            if (env(variable) is { Length: > 0 } prefix) prefixes.Add(prefix);
        // A virtual environment whose python3 is on PATH without being activated (/opt/torch/.venv/bin, say).
        foreach (string bin in (env("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            if (File.Exists(Path.Combine(bin, "python3")) && Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(bin)) is { } venv
                && File.Exists(Path.Combine(venv, "pyvenv.cfg")))
                prefixes.Add(venv);
        if (env("HOME") is { Length: > 0 } home) prefixes.Add(Path.Combine(home, ".local"));
        prefixes.AddRange(["/usr/local", "/usr", "/opt/conda"]);
        foreach (string prefix in prefixes.Distinct())
            foreach (string python in Subdirectories(Path.Combine(prefix, "lib"), "python3*"))
                sitePackages.AddRange([Path.Combine(python, "site-packages"), Path.Combine(python, "dist-packages")]);

        var directories = new List<string>();
        foreach (string site in sitePackages.Distinct())
        {
            foreach (string package in Subdirectories(Path.Combine(site, "nvidia"), "*"))
                if (Directory.Exists(Path.Combine(package, "lib"))) directories.Add(Path.Combine(package, "lib"));
            if (Directory.Exists(Path.Combine(site, "torch", "lib"))) directories.Add(Path.Combine(site, "torch", "lib"));
        }
        return directories;
    }

    private static IEnumerable<string> Override(Func<string, string?> env) =>
        env(PathVariable) is { Length: > 0 } value ? value.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries) : [];

    private static IEnumerable<string> SystemLibraryDirectories() =>
        [$"/usr/lib/{TargetTriple()}", "/usr/lib64", "/usr/lib"];

    private static string ToolkitTarget() => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "sbsa-linux" : "x86_64-linux";

    private static string TargetTriple() => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "aarch64-linux-gnu" : "x86_64-linux-gnu";

    private static IEnumerable<string> Subdirectories(string directory, string pattern)
    {
        if (!Directory.Exists(directory)) return [];
        try
        {
            return Directory.EnumerateDirectories(directory, pattern).Order(StringComparer.Ordinal).ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return []; // an unreadable folder is not a place the library can be loaded from either
        }
    }
}
