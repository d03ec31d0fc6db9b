using Qwen2VL.Model.Text;

namespace Qwen2VL.Model.Training.Synthetic;

/// <summary>
/// A small byte-level BPE tokenizer for the shapes task, trained by <see cref="TinyBpeTrainer"/> on the chat-template
/// text of every question with each of its possible answers. Special tokens follow the fixture tokenizer
/// (tests/fixtures/qwen2vl-tiny-tokenizer): the eight Qwen2-VL specials at ids vocab .. vocab+7 in the order
/// vision_start, vision_end, image_pad, video_pad, im_end, endoftext, im_start, vision_pad.
/// </summary>
public static class ShapesTokenizer
{
    /// <summary>
    /// Regular tokens (ids 0..367; specials 368..375, so a model needs vocab_size ≥ 376). The corpus has few distinct
    /// pieces: merging stops by itself at 373 tokens, when every piece is one token; 368 keeps a margin below that
    /// while still making every answer and nearly every template and question word a single token.
    /// </summary>
    public const int DefaultVocabSize = 368;

    static readonly string[] SpecialOrder =
    [
        ChatTemplate.VisionStart, ChatTemplate.VisionEnd, ChatTemplate.ImagePad, ChatTemplate.VideoPad,
        ChatTemplate.ImEnd, "<|endoftext|>", ChatTemplate.ImStart, "<|vision_pad|>",
    ];

    /// <summary>The special tokens and their ids for a regular vocabulary of <paramref name="vocabSize"/>.</summary>
    public static IReadOnlyDictionary<string, int> SpecialTokens(int vocabSize = DefaultVocabSize) =>
        SpecialOrder.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => vocabSize + x.i);

    /// <summary>
    /// Every rendered conversation the task can produce (each question with each of its possible answers), weighted
    /// so that the four question types weigh the same, as they do in the data set: a position conversation is one
    /// of 90 (18 questions × 5 answers), so each of the 6 colour conversations is repeated 15 times, each kind and
    /// count one 30 times. Merges then follow the frequencies training will see, and every answer — which follows
    /// the header's newline with no space, unlike the same word inside a question — becomes one token.
    /// </summary>
    public static IEnumerable<string> Corpus()
    {
        var byQuestion = ShapeQuestions.AllQuestions.Select(q => (Question: q, Answers: AnswersTo(q).ToList())).ToList();
        var perType = byQuestion.GroupBy(x => TypeOf(x.Question)).ToDictionary(g => g.Key, g => g.Sum(x => x.Answers.Count));
        int largest = perType.Values.Max();
        foreach (var (question, answers) in byQuestion)
        {
            int repeat = largest / perType[TypeOf(question)];
            foreach (var answer in answers)
            {
                var text = ChatTemplate.Render(
                [
                    new ChatMessage("user", [ChatContent.Image(), ChatContent.Text(question)]),
                    ChatMessage.FromText("assistant", answer),
                ]);
                for (int k = 0; k < repeat; k++) yield return text;
            }
        }
    }

    /// <summary>Trains and writes <c>tokenizer.json</c> atomically.</summary>
    public static void Build(string outPath, int vocabSize = DefaultVocabSize) =>
        TinyBpeTrainer.TrainToFile(Corpus(), vocabSize, SpecialTokens(vocabSize), outPath);

    static ShapeQuestionType TypeOf(string question) => question switch
    {
        ShapeQuestions.ColourQuestion => ShapeQuestionType.Colour,
        ShapeQuestions.KindQuestion => ShapeQuestionType.Kind,
        ShapeQuestions.CountQuestion => ShapeQuestionType.Count,
        _ => ShapeQuestionType.Position,
    };

    static IEnumerable<string> AnswersTo(string question) => question switch
    {
        ShapeQuestions.ColourQuestion => Enum.GetValues<ShapeColour>().Select(ShapeWords.Name),
        ShapeQuestions.KindQuestion => Enum.GetValues<ShapeKind>().Select(ShapeWords.Name),
        ShapeQuestions.CountQuestion => new[] { 1, 2, 3 }.Select(ShapeWords.Count),
        _ => Enum.GetValues<ShapeRegion>().Select(ShapeWords.Name),
    };
}
