using System.Text.Json;
using ChatStack.ChatApi.Telemetry;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;

namespace ChatStack.Tests.Telemetry;

/// <summary>Captured message content stays valid JSON and bounded however long the text it quotes.</summary>
public class CapturedContentTests
{
    [Fact]
    public void Text_up_to_the_cap_is_captured_whole()
    {
        var text = new string('x', GenAiContent.MaxCapturedChars);
        Assert.Same(text, GenAiContent.Text(text));
        Assert.Null(GenAiContent.Text(null));
    }

    [Fact]
    public void Longer_text_keeps_its_start_and_says_how_much_was_left_out_without_splitting_a_character()
    {
        // An emoji (two UTF-16 units) across the cap: kept whole or not at all, never half of it.
        var text = new string('a', GenAiContent.MaxCapturedChars - 1) + "😀" + new string('b', 1_000_000);
        var captured = GenAiContent.Text(text);
        Assert.Equal(new string('a', GenAiContent.MaxCapturedChars - 1) + $"… [{text.Length - GenAiContent.MaxCapturedChars + 1} more characters not captured]", captured);
        Assert.DoesNotContain(captured, char.IsSurrogate);
    }

    [Fact]
    public void A_context_and_an_answer_of_a_megabyte_each_are_captured_as_valid_json_of_bounded_size()
    {
        var huge = new string('=', 1_000_000);
        var call = new FunctionCallContent("calculate", "tools", "call-1", new KernelArguments { ["expression"] = huge });
        var history = new ChatHistory("system prompt");
        history.AddUserMessage(huge);
        history.Add(new ChatMessageContent(AuthorRole.Assistant, [call]));
        history.Add(new ChatMessageContent(AuthorRole.Tool, [new FunctionResultContent(call, huge)]));

        var input = GenAiContent.Messages(history);
        var output = GenAiContent.Output(huge, [call], "stop");

        Assert.InRange(input.Length, 3 * GenAiContent.MaxCapturedChars, 4 * GenAiContent.MaxCapturedChars);
        Assert.InRange(output.Length, 2 * GenAiContent.MaxCapturedChars, 3 * GenAiContent.MaxCapturedChars);
        var messages = JsonDocument.Parse(input).RootElement;
        Assert.StartsWith("=====", messages[1].GetProperty("parts")[0].GetProperty("content").GetString());
        Assert.EndsWith("[983616 more characters not captured]", messages[3].GetProperty("parts")[0].GetProperty("response").GetString());
        var answer = JsonDocument.Parse(output).RootElement[0].GetProperty("parts");
        Assert.EndsWith("not captured]", answer[0].GetProperty("content").GetString());
        Assert.EndsWith("not captured]", answer[1].GetProperty("arguments").GetProperty("expression").GetString());
    }
}
