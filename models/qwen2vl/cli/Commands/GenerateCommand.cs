using System.CommandLine;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>generate</c>: answers one prompt about images (and GIF videos) with the compiled model, streaming the text as it
/// is generated; then tokens/s on stderr. Images go where the prompt has <c>&lt;image&gt;</c> (the training data's
/// placeholder), before the text when it has none.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var shared = new AnswerOptions();
        var images = new Option<string[]>("--image") { Description = "Image file (PNG, JPEG, ...); repeat for several. Placed at the prompt's <image> placeholders in order, or before the text when it has none.", AllowMultipleArgumentsPerToken = true };
        var videos = new Option<string[]>("--video") { Description = "Animated GIF used as a video; repeat for several. Placed at the prompt's <video> placeholders, or before the text.", AllowMultipleArgumentsPerToken = true };
        var prompt = new Option<string?>("--prompt") { Description = $"The user's question; may hold <image> and <video> placeholders. Required with --model, --image or --video; without all of them the embedded shapes model is asked \"{DefaultModel.ShapesQuestion}\" about its sample image." };
        var command = new Command("generate", "Answer a prompt about images / videos, streaming the generated text.");
        command.Options.Add(images);
        command.Options.Add(videos);
        command.Options.Add(prompt);
        shared.AddTo(command);
        command.SetAction(parse =>
        {
            var (imagePaths, videoPaths, question) = (parse.GetValue(images) ?? [], parse.GetValue(videos) ?? [], parse.GetValue(prompt));
            if (question is null)
            {
                // The README's main command: the embedded model answers about the embedded example image.
                if (parse.GetValue(shared.Model) is not null || imagePaths.Length > 0 || videoPaths.Length > 0)
                    throw new ModelException("--prompt is required");
                (imagePaths, question) = ([DefaultModel.ShapesImage], DefaultModel.ShapesQuestion);
                Console.Error.WriteLine($"(embedded shapes model; image {DefaultModel.ShapesImage}; prompt \"{question}\")");
            }
            InputLimits.Default.CheckImageCount(imagePaths.Length + videoPaths.Length);
            var videoOptions = shared.Video(parse);
            // Inputs are read and placed before the model loads: a bad file or placeholder count costs nothing.
            var conversation = new Conversation { System = parse.GetValue(shared.System) };
            conversation.AddUser(question, imagePaths.Select(p => RgbImage.Load(p)).ToList(),
                videoPaths.Select(p => VideoLoader.LoadGif(p, videoOptions)).ToList());
            using var loaded = shared.Load(parse, parse.GetValue(shared.Model) ?? DefaultModel.ShapesDirectory);
            var answer = Answer(loaded, conversation);
            AnswerReport.Print(answer, loaded.Options);
            return 0;
        });
        return command;
    }

    /// <summary>One answer, streamed to stdout as it is generated (the whole text is ready when this returns).</summary>
    private static ChatAnswer Answer(LoadedModel loaded, Conversation conversation)
    {
        using var session = new ChatSession(loaded.Model, loaded.Tokenizer, loaded.Processor)
        {
            PromptCheck = (promptTokens, newTokens) => InputLimits.Default.CheckTokens(promptTokens, newTokens, ForwardCommand.MaxPositions(loaded.Model.Config), "--max-new-tokens"),
        };
        foreach (var turn in conversation.Turns) session.Conversation.Add(turn);
        session.Conversation.System = conversation.System;
        var stream = new TokenStreamDecoder(loaded.Tokenizer, skipSpecialTokens: true);
        var answer = session.Answer(loaded.Options, id => Console.Write(stream.Add(checked((int)id))));
        Console.WriteLine(stream.Flush());
        return answer;
    }
}
