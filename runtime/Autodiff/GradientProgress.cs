namespace Qwen2VL.Runtime;

/// <summary>
/// A gradient sink that wants to know, while the backward pass is still running, when parameter gradients are final:
/// the model calls <see cref="ModuleDone"/> with a module's checkpoint prefix (<c>model.layers.3.</c>) once that
/// module's backward has written its last gradient (the device synchronised), so data parallelism can start reducing
/// those gradients while earlier layers are still differentiated. Modules finish in one fixed order per model
/// (the model documents it); a module a batch does not use (the vision tower of a text batch) is not reported.
/// </summary>
public interface IGradientProgress
{
    void ModuleDone(string prefix);
}
