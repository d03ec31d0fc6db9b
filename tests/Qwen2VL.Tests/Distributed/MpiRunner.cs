using System.Diagnostics;

namespace Qwen2VL.Tests.Distributed;

/// <summary>
/// Runs the qwen2vl CLI under <c>mpirun -np N</c> (Open MPI, installed by .ci/run from Debian's openmpi-bin and
/// libopenmpi-dev). <c>--oversubscribe</c>: CI has 2 cores and the tests start up to 4 ranks. CI runs as root, which
/// Open MPI refuses unless told otherwise.
/// </summary>
internal static class MpiRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(int ranks, params string[] args) => Run(ranks, TimeSpan.FromMinutes(3), args);

    public static Result Run(int ranks, TimeSpan timeout, params string[] args)
    {
        string mpirun = new[] { "/usr/bin/mpirun", "/usr/local/bin/mpirun" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("mpirun not found: the MPI tests need Open MPI (apt-get install openmpi-bin libopenmpi-dev; .ci/run installs it)");
        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-np", ranks.ToString(), "--oversubscribe", "--bind-to", "none" }) start.ArgumentList.Add(a);
        start.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet");
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "qwen2vl.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        // Shared memory and loopback only: tests run on one machine, without a network.
        start.Environment["OMPI_MCA_btl"] = "self,vader";
        start.Environment["OMPI_MCA_plm_rsh_agent"] = "false";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"mpirun -np {ranks} qwen2vl {string.Join(' ', args)} did not finish in {timeout.TotalMinutes} minutes");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
