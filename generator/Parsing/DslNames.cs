namespace Qwen2VL.Generator.Parsing;

/// <summary>Metadata names of the DSL types the generator recognises.</summary>
internal static class DslNames
{
    public const string Module = "Qwen2VL.Dsl.ModuleAttribute";
    public const string Dim = "Qwen2VL.Dsl.DimAttribute";
    public const string Const = "Qwen2VL.Dsl.ConstAttribute";
    public const string Param = "Qwen2VL.Dsl.ParamAttribute";
    public const string Submodule = "Qwen2VL.Dsl.SubmoduleAttribute";
    public const string Shape = "Qwen2VL.Dsl.ShapeAttribute";
    public const string Op = "Qwen2VL.Dsl.OpAttribute";
    public const string Tensor = "Qwen2VL.Dsl.Tensor";
    public const string Ops = "Qwen2VL.Dsl.Ops";
}
