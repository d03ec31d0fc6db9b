using Microsoft.Extensions.AI;
using Qwen2VL.ChatClient;

using IChatClient client = Qwen2VLChatClient.LoadDefault();
var image = new DataContent(File.ReadAllBytes(Qwen2VLChatClient.DefaultSampleImage), "image/png");
var question = new ChatMessage(ChatRole.User, [image, new TextContent("What colour is the shape?")]);
await foreach (var update in client.GetStreamingResponseAsync([question]))
    Console.Write(update.Text);
Console.WriteLine();
