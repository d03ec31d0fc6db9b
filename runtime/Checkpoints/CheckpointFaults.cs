namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// Test hook: called at each named stage of a save, so a test can throw there and check that an interrupted
/// save leaves the previous checkpoint and `latest` as they were. Stages, in order: temp-created,
/// weights-written, optimizer-written, files-written, before-rename, before-latest, before-prune.
/// </summary>
internal interface ICheckpointFaultInjector
{
    void At(string stage);
}
