using System.Globalization;
using System.Text.Json;

namespace Qwen2VL.Runtime.Checkpoints;

/// <summary>
/// trainer_state.json: step, epoch, data position, RNG state (base64), learning-rate schedule and recent losses.
/// Doubles are written shortest-round-trip, so a resumed run sees bit-identical numbers; non-finite values
/// (a diverged loss) are written as the strings "NaN", "Infinity", "-Infinity", which JSON numbers cannot hold.
/// </summary>
internal static class TrainerStateJson
{
    public const string FileName = "trainer_state.json";
    private const int FormatVersion = 1;

    public static byte[] Write(TrainerState state, int lossHistoryLength)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("format_version", FormatVersion);
            json.WriteNumber("global_step", state.Step);
            json.WriteNumber("epoch", state.Epoch);
            json.WriteStartArray("data_position");
            json.WriteNumberValue(state.DataPosition.Pass);
            json.WriteNumberValue(state.DataPosition.Index);
            json.WriteEndArray();
            json.WriteString("rng_state", Convert.ToBase64String(state.RngState));
            json.WriteStartObject("learning_rate_schedule");
            foreach (var (name, value) in state.LearningRateSchedule)
            {
                json.WritePropertyName(name);
                WriteDouble(json, value);
            }
            json.WriteEndObject();
            json.WriteStartArray("loss_history");
            int skip = Math.Max(0, state.LossHistory.Count - Math.Max(0, lossHistoryLength));
            foreach (var (step, loss) in state.LossHistory.Skip(skip))
            {
                json.WriteStartObject();
                json.WriteNumber("step", step);
                json.WritePropertyName("loss");
                WriteDouble(json, loss);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    public static TrainerState Read(byte[] bytes, string file)
    {
        try
        {
            using JsonDocument document = StrictJson.Parse(bytes, file);
            JsonElement root = document.RootElement;
            int version = Get(root, "format_version", file).GetInt32();
            if (version != FormatVersion)
                throw new ModelException($"{file}: format_version {version} is not supported (expected {FormatVersion})");
            JsonElement position = Get(root, "data_position", file);
            if (position.ValueKind != JsonValueKind.Array || position.GetArrayLength() != 2)
                throw new ModelException($"{file}: data_position must be an array of two integers");
            var schedule = new Dictionary<string, double>();
            foreach (JsonProperty property in Get(root, "learning_rate_schedule", file).EnumerateObject())
                schedule[property.Name] = ReadDouble(property.Value, file);
            var losses = new List<(long, double)>();
            foreach (JsonElement entry in Get(root, "loss_history", file).EnumerateArray())
                losses.Add((Get(entry, "step", file).GetInt64(), ReadDouble(Get(entry, "loss", file), file)));
            return new TrainerState
            {
                Step = Get(root, "global_step", file).GetInt64(),
                Epoch = Get(root, "epoch", file).GetInt32(),
                DataPosition = new DataPosition(position[0].GetInt32(), position[1].GetInt32()),
                RngState = Convert.FromBase64String(Get(root, "rng_state", file).GetString() ?? ""),
                LearningRateSchedule = schedule,
                LossHistory = losses,
            };
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or OverflowException)
        {
            throw new ModelException($"{file}: not a valid trainer state ({FirstLine(e.Message)})", e);
        }
    }

    private static JsonElement Get(JsonElement element, string key, string file) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(key, out JsonElement value)
            ? value
            : throw new ModelException($"{file}: missing key '{key}'");

    private static void WriteDouble(Utf8JsonWriter json, double value)
    {
        if (double.IsFinite(value)) json.WriteNumberValue(value);
        else json.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
    }

    private static double ReadDouble(JsonElement element, string file) => element.ValueKind switch
    {
        JsonValueKind.Number => element.GetDouble(),
        JsonValueKind.String when double.TryParse(element.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) => v,
        _ => throw new ModelException($"{file}: expected a number, found {element.ValueKind}"),
    };

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
