using ChatStack.ChatApi.Agent;
using ChatStack.Tokenization;
using Microsoft.SemanticKernel.ChatCompletion;

namespace ChatStack.Tests.Chat;

/// <summary>The offline model's answers are Markdown a renderer reads as a model's: what the page shows depends on it.</summary>
public class OfflineModelTests
{
    [Fact]
    public async Task A_fenced_block_stands_on_its_own_lines_and_every_fence_closes()
    {
        var model = new OfflineChatCompletionService(TokenCounterFactory.Default.ForEncoding("o200k_base"), new OfflineModelOptions { DeltaDelayMs = 0 });
        var blocks = 0;
        for (var n = 0; n < 40; n++)
        {
            var history = new ChatHistory();
            history.AddUserMessage($"Write a long essay about budgets, part {n}.");
            var answer = (await model.GetChatMessageContentsAsync(history)).Single().Content!;

            // CommonMark opens a fence only at the start of a line: a fence after prose would pair with the wrong one.
            var lines = answer.Split('\n');
            Assert.All(lines.Where(line => line.Contains("```", StringComparison.Ordinal)), line => Assert.StartsWith("```", line));
            var fences = lines.Count(line => line.StartsWith("```", StringComparison.Ordinal));
            Assert.True(fences % 2 == 0, $"part {n}: {fences} fences");
            // A block is a paragraph of its own: a blank line before its opening fence, unless it opens the line after one.
            for (var i = 0; i < lines.Length; i++)
            {
                if (lines[i].StartsWith("```json", StringComparison.Ordinal))
                {
                    Assert.True(i > 0 && lines[i - 1].Length == 0, $"part {n}, line {i}: '{lines[i - 1]}' before a fence");
                    blocks++;
                }
            }
        }

        Assert.True(blocks > 10, $"{blocks} blocks in 40 answers");
    }
}
