using System.Reflection;

namespace Qwen2VL.Runtime.Aot;

/// <summary>How the runtime launches a kernel, which decides the entry point ILGPU compiles.</summary>
public enum KernelGrouping
{
    /// <summary>
    /// <c>LoadAutoGroupedStreamKernel</c>: the first parameter is the thread index; ILGPU adds a bounds check
    /// and passes the launch extent as the first kernel argument.
    /// </summary>
    Implicit,

    /// <summary><c>LoadStreamKernel</c> with an explicit grid and group (the GEMM kernels).</summary>
    Explicit,
}

/// <summary>
/// One kernel that ahead-of-time compilation turns into PTX: the method ILGPU compiles (closed over its epilogue
/// for the generic GEMM kernels), the module it belongs to and that module's generated-code hash.
/// </summary>
public sealed class AotKernel
{
    public AotKernel(string module, string name, MethodInfo method, KernelGrouping grouping, string generatedCodeHash)
    {
        Module = module;
        Name = name;
        Method = method;
        Grouping = grouping;
        GeneratedCodeHash = generatedCodeHash;
        ParameterTypes = method.GetParameters().Select(p => TypeNames.Format(p.ParameterType)).ToArray();
    }

    /// <summary>The [Module] class name (<c>VisionBlock</c>), or <c>Runtime</c> for the runtime's own kernels.</summary>
    public string Module { get; }

    /// <summary>The kernel within its module: a GpuKernels method (<c>G1_LayerNorm</c>) or <c>GemmBlocked.G2_Linear_Epilogue</c>.</summary>
    public string Name { get; }

    public MethodInfo Method { get; }

    public KernelGrouping Grouping { get; }

    /// <summary>sha256 (hex) of the module's identity; see <see cref="GeneratedCodeHash"/>.</summary>
    public string GeneratedCodeHash { get; }

    /// <summary>The parameter types of the source method, in order, as C# spells them (<c>ArrayView&lt;float&gt;</c>).</summary>
    public IReadOnlyList<string> ParameterTypes { get; }

    /// <summary><c>Module.Name</c>: unique within a catalog.</summary>
    public string Key => Module + "." + Name;

    /// <summary>The PTX file of this kernel inside an architecture folder.</summary>
    public string FileName => Key + ".ptx";

    public override string ToString() => Key;
}
