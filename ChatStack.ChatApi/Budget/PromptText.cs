using System.Text;
using System.Text.Json;
using ChatStack.Tokenization;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;

namespace ChatStack.ChatApi.Budget;

/// <summary>The text a model is sent for a message: its content, the tool calls it made and the results it carries.</summary>
internal static class PromptText
{
    public static string Of(ChatMessageContent message)
    {
        var text = new StringBuilder(message.Content);
        foreach (var item in message.Items)
        {
            switch (item)
            {
                case FunctionCallContent call:
                    text.Append(call.FunctionName).Append(JsonSerializer.Serialize(call.Arguments));
                    break;
                case FunctionResultContent result:
                    text.Append(result.Result?.ToString());
                    break;
            }
        }

        return text.ToString();
    }

    /// <summary>Tokens of a model call's input, message by message (without the provider's per-message framing).</summary>
    public static int Count(ITokenCounter counter, ChatHistory history) => history.Sum(m => counter.CountTokens(Of(m)));
}
