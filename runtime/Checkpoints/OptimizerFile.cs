using System.Text.Json;

namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// optimizer.safetensors: the flat first and second moments as F32 tensors `exp_avg` and `exp_avg_sq` (PyTorch's
/// Adam names), and the per-parameter layout as JSON in the header's __metadata__ under "layout".
/// </summary>
internal static class OptimizerFile
{
    public const string FileName = "optimizer.safetensors";
    private const string MasterTensor = "master_weights";

    public static void Write(string path, OptimizerState state)
    {
        Validate(state, "optimizer state");
        var layout = new MemoryStream();
        using (var json = new Utf8JsonWriter(layout))
        {
            json.WriteStartArray();
            foreach (OptimizerSlot slot in state.Layout)
            {
                json.WriteStartObject();
                json.WriteString("name", slot.Name);
                json.WriteNumber("offset", slot.Offset);
                json.WriteStartArray("shape");
                foreach (int d in slot.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        List<SafetensorsEntry> tensors = [SafetensorsEntry.F32("exp_avg", state.M, state.M.Length), SafetensorsEntry.F32("exp_avg_sq", state.V, state.V.Length)];
        if (state.Master is { } master) tensors.Add(SafetensorsEntry.F32(MasterTensor, master, master.Length));
        SafetensorsWriter.Write(path, tensors,
            new Dictionary<string, string> { ["format"] = "pt", ["layout"] = System.Text.Encoding.UTF8.GetString(layout.ToArray()) });
    }

    public static OptimizerState Read(string path, string file)
    {
        using SafetensorsFile safetensors = SafetensorsFile.Open(path);
        if (!safetensors.Metadata.TryGetValue("layout", out string? layoutJson))
            throw new ModelException($"{file}: header __metadata__ has no 'layout'");
        var layout = new List<OptimizerSlot>();
        try
        {
            using JsonDocument document = StrictJson.Parse(layoutJson, file + " layout");
            foreach (JsonElement slot in document.RootElement.EnumerateArray())
                layout.Add(new OptimizerSlot(
                    slot.GetProperty("name").GetString() ?? "",
                    slot.GetProperty("offset").GetInt64(),
                    slot.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray()));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new ModelException($"{file}: layout metadata is not valid ({e.Message.Split('\n')[0].Trim()})", e);
        }
        var state = new OptimizerState(safetensors.ReadFloat32("exp_avg"), safetensors.ReadFloat32("exp_avg_sq"), layout)
        {
            Master = safetensors.Tensors.ContainsKey(MasterTensor) ? safetensors.ReadFloat32(MasterTensor) : null,
        };
        Validate(state, file);
        return state;
    }

    /// <summary>Moments of equal length, and every slot inside them.</summary>
    public static void Validate(OptimizerState state, string context)
    {
        if (state.M.Length != state.V.Length)
            throw new ModelException($"{context}: exp_avg has {state.M.Length} elements but exp_avg_sq has {state.V.Length}");
        foreach (OptimizerSlot slot in state.Layout)
        {
            // Checked: a hostile layout could overflow the product and pass the bounds test.
            long count = slot.Shape.Any(d => d < 0) ? -1 : CheckedSize.Product(slot.Shape.Select(d => (long)d)) ?? -1;
            if (slot.Offset < 0 || count < 0 || slot.Offset > state.M.Length - count)
                throw new ModelException(
                    $"{context}: slot '{slot.Name}' (offset {slot.Offset}, shape {SafetensorsDTypes.FormatShape(slot.Shape)}) lies outside the {state.M.Length} moments");
        }
    }
}
