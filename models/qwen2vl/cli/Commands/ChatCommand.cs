using System.CommandLine;
using Qwen2VL.Model.Generation;
using Qwen2VL.Model.Processing;
using Qwen2VL.Model.Text;
using Qwen2VL.Runtime;

namespace Qwen2VL.Cli;

/// <summary>
/// <c>chat</c>: an interactive, multi-turn conversation on stdin/stdout. Each line is a user turn; the KV cache is kept
/// across turns (<see cref="ChatSession"/>), so a turn costs only its own tokens. <c>/image PATH</c> and
/// <c>/video PATH</c> attach media to the next message (at its <c>&lt;image&gt;</c> / <c>&lt;video&gt;</c>
/// placeholders, else first), <c>/reset</c> starts over, <c>/exit</c> (or end of input) ends. Works with piped input:
/// the prompt marker goes to stderr only when stdin is a terminal, answers to stdout, notes to stderr.
/// </summary>
internal static class ChatCommand
{
    public const int DefaultContext = 4096;
    private const string Help = "commands: /image PATH, /video PATH (attach to your next message), /reset (start over), /exit";

    public static Command Create()
    {
        var shared = new AnswerOptions();
        var images = new Option<string[]>("--image") { Description = "Image file attached to the first message; repeat for several.", AllowMultipleArgumentsPerToken = true };
        var context = new Option<int>("--context") { Description = $"Positions the conversation may take in the KV cache (prompts, images and answers together). Default: {DefaultContext}.", DefaultValueFactory = _ => DefaultContext };
        var command = new Command("chat", "Chat with the model, multi-turn, reading messages from stdin (/image PATH, /video PATH, /reset, /exit).");
        command.Options.Add(images);
        command.Options.Add(context);
        shared.AddTo(command);
        command.SetAction(parse =>
        {
            if (parse.GetValue(context) < 2) throw new ModelException($"--context must be ≥ 2, got {parse.GetValue(context)}");
            var videoOptions = shared.Video(parse);
            var pendingImages = (parse.GetValue(images) ?? []).Select(p => RgbImage.Load(p)).ToList();
            var pendingVideos = new List<IReadOnlyList<RgbImage>>();
            using var loaded = shared.Load(parse, parse.GetValue(shared.Model) ?? DefaultModel.ShapesDirectory);
            using var session = new ChatSession(loaded.Model, loaded.Tokenizer, loaded.Processor, parse.GetValue(context));
            session.Conversation.System = parse.GetValue(shared.System);
            bool terminal = !Console.IsInputRedirected;
            if (terminal) Console.Error.WriteLine($"({Help})");
            while (true)
            {
                if (terminal) Console.Error.Write("> ");
                string? line = Console.ReadLine();
                if (line is null) break;
                line = line.Trim();
                if (line.Length == 0) continue;
                if (line is "/exit" or "/quit") break;
                if (line.StartsWith('/'))
                {
                    Command(line, session, pendingImages, pendingVideos, videoOptions);
                    continue;
                }
                Turn(loaded, session, line, pendingImages, pendingVideos);
            }
            return 0;
        });
        return command;
    }

    private static void Command(string line, ChatSession session, List<RgbImage> images, List<IReadOnlyList<RgbImage>> videos, VideoOptions videoOptions)
    {
        int space = line.IndexOf(' ');
        string name = space < 0 ? line : line[..space], argument = space < 0 ? "" : line[(space + 1)..].Trim();
        try
        {
            switch (name)
            {
                case "/reset":
                    session.Reset();
                    images.Clear();
                    videos.Clear();
                    Console.Error.WriteLine("(conversation cleared)");
                    break;
                case "/image" when argument.Length > 0:
                    var image = RgbImage.Load(Unquote(argument));
                    images.Add(image);
                    Console.Error.WriteLine($"(image {images.Count} attached, {image.Width}×{image.Height}: it goes with your next message)");
                    break;
                case "/video" when argument.Length > 0:
                    videos.Add(VideoLoader.LoadGif(Unquote(argument), videoOptions));
                    Console.Error.WriteLine($"(video {videos.Count} attached, {videos[^1].Count} frames: it goes with your next message)");
                    break;
                default:
                    Console.Error.WriteLine($"(unknown command '{line}'; {Help})");
                    break;
            }
        }
        catch (Exception e) when (e is ModelException or PreprocessingException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("error: " + e.Message.ReplaceLineEndings(" "));
        }
    }

    private static void Turn(LoadedModel loaded, ChatSession session, string text, List<RgbImage> images, List<IReadOnlyList<RgbImage>> videos)
    {
        try
        {
            session.Conversation.AddUser(text, images, videos);
        }
        catch (ModelException e)
        {
            Console.Error.WriteLine("error: " + e.Message);    // a placeholder count that does not match: the media stay attached
            return;
        }
        images.Clear();
        videos.Clear();
        var stream = new TokenStreamDecoder(loaded.Tokenizer, skipSpecialTokens: true);
        try
        {
            var answer = session.Answer(loaded.Options, id => Console.Write(stream.Add(checked((int)id))));
            Console.WriteLine(stream.Flush());
            AnswerReport.Print(answer, loaded.Options);
        }
        catch (Exception e) when (e is ModelException or PreprocessingException or TokenizerException)
        {
            session.Conversation.RemoveLast();
            Console.WriteLine();
            Console.Error.WriteLine("error: " + e.Message.ReplaceLineEndings(" "));
        }
    }

    private static string Unquote(string s) => s.Length >= 2 && (s[0] == '"' && s[^1] == '"' || s[0] == '\'' && s[^1] == '\'') ? s[1..^1] : s;
}
