using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ChatStack.ChatApi.Budget;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Agent;

/// <summary>What a provider said it used, in the provider-neutral shape the agent reconciles against.</summary>
internal sealed record ProviderUsage(int PromptTokens, int CompletionTokens);

/// <summary>
/// A deterministic, offline stand-in for an LLM: no network, no key, the same answer for the same input. It
/// streams a real-looking answer in small deltas, asks for tools when the message calls for them (a time zone,
/// arithmetic, a search of the conversation), answers from tool results, summarizes when asked, and reports
/// usage like a provider would (counting everything it was sent, re-sends included). It does not understand
/// anything: it is there so every phase of the protocol happens locally and in tests.
/// </summary>
internal sealed partial class OfflineChatCompletionService(ITokenCounter counter, OfflineModelOptions options) : IChatCompletionService
{
    public const string ModelName = "chatstack-offline-deterministic";

    /// <summary>The first system message of a summarization request starts with this.</summary>
    public const string SummarizeInstruction = "Summarize the conversation below";

    private static readonly string[] Sentences =
    [
        "The short answer is that it depends on what you optimise for, so let me lay out the trade-offs first.",
        "In practice, most teams start with the simplest option and only add machinery once measurements show a need.",
        "A useful rule of thumb: keep the hot path small, make failures visible, and measure before you tune.",
        "For example, `var total = items.Sum(i => i.Price * i.Quantity);` is clear and fast enough for most lists.",
        "Les mêmes principes s'appliquent ailleurs : simplicité d'abord, puis mesure, puis optimisation ciblée.",
        "日本語で言えば、まず小さく始めて、計測してから改善するのが良い方法です。",
        "If you need a checklist: define the goal ✅, pick a metric 📏, run the experiment 🧪, then decide 🎯.",
        "Edge cases matter too — empty inputs, very large inputs, and inputs in unexpected scripts such as Ελληνικά or العربية.",
        "Der wichtigste Punkt ist, dass jede Entscheidung begründet und später überprüfbar bleibt.",
        "Finally, write down what you learned; future you (and your teammates) will thank you for it.",
        "```json\n{\"status\": \"ok\", \"retries\": 3, \"latency_ms\": 42.5}\n```",
        "Another angle is cost: every extra round trip adds latency, and every extra token adds spend.",
    ];

    public IReadOnlyDictionary<string, object?> Attributes { get; } = new Dictionary<string, object?> { ["ModelId"] = ModelName };

    public async Task<IReadOnlyList<ChatMessageContent>> GetChatMessageContentsAsync(ChatHistory chatHistory,
        PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        var calls = new FunctionCallContentBuilder();
        IReadOnlyDictionary<string, object?>? metadata = null;
        await foreach (var update in GetStreamingChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken))
        {
            text.Append(update.Content);
            calls.Append(update);
            metadata = update.Metadata ?? metadata;
        }

        var message = new ChatMessageContent(AuthorRole.Assistant, text.ToString(), ModelName, metadata: metadata);
        foreach (var call in calls.Build())
        {
            message.Items.Add(call);
        }

        return [message];
    }

    public async IAsyncEnumerable<StreamingChatMessageContent> GetStreamingChatMessageContentsAsync(ChatHistory chatHistory,
        PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var promptTokens = PromptText.Count(counter, chatHistory);
        // What was "generated", for the usage chunk.
        int completionTokens;

        var calls = chatHistory.FirstOrDefault()?.Content?.StartsWith(SummarizeInstruction, StringComparison.Ordinal) == true
            ? []
            : PlanToolCalls(chatHistory, kernel, executionSettings);
        if (calls.Count > 0)
        {
            var index = 0;
            var written = new StringBuilder();
            foreach (var (name, arguments) in calls)
            {
                await Task.Delay(options.DeltaDelayMs, cancellationToken);
                var json = JsonSerializer.Serialize(arguments);
                written.Append(name).Append(json);
                var update = new StreamingChatMessageContent(AuthorRole.Assistant, null, modelId: ModelName);
                update.Items.Add(new StreamingFunctionCallUpdateContent($"call_{index}_{Stable(name + json):x8}", $"tools-{name}", json, index));
                index++;
                yield return update;
            }

            completionTokens = counter.CountTokens(written.ToString());
        }
        else
        {
            // Written part by part, like a model that never holds its whole answer: thousands of open streams
            // would otherwise each keep a full copy in this process.
            IEnumerable<string> parts = chatHistory.FirstOrDefault()?.Content?.StartsWith(SummarizeInstruction, StringComparison.Ordinal) == true
                ? [Summarize(chatHistory)]
                : Answer(chatHistory, options.LongAnswerSentences);
            var written = counter.CreateStreamingCounter();
            foreach (var delta in Deltas(parts, Stable(LastUserMessage(chatHistory))))
            {
                if (options.DeltaDelayMs > 0)
                {
                    await Task.Delay(options.DeltaDelayMs, cancellationToken);
                }

                cancellationToken.ThrowIfCancellationRequested();
                written.Append(delta);
                yield return new StreamingChatMessageContent(AuthorRole.Assistant, delta, modelId: ModelName);
            }

            completionTokens = written.Total;
        }

        // Like OpenAI's final usage chunk: empty content, usage and finish reason in the metadata.
        yield return new StreamingChatMessageContent(AuthorRole.Assistant, null, modelId: ModelName, metadata: new Dictionary<string, object?>
        {
            ["Usage"] = new ProviderUsage(promptTokens, completionTokens),
            ["FinishReason"] = calls.Count > 0 ? "tool_calls" : "stop",
        });
    }

    /// <summary>Tools the newest user message calls for, unless their results are already in.</summary>
    private static List<(string Name, Dictionary<string, string> Arguments)> PlanToolCalls(ChatHistory history, Kernel? kernel, PromptExecutionSettings? settings)
    {
        var last = history.LastOrDefault();
        if (kernel is null || settings?.FunctionChoiceBehavior is null || last is null || last.Role != AuthorRole.User)
        {
            return [];
        }

        bool Has(string name) => kernel.Plugins.TryGetFunction("tools", name, out _);
        var message = last.Content ?? "";
        var calls = new List<(string, Dictionary<string, string>)>();
        if (Has(ChatTools.TimeNow) && TimeZoneFor(message) is { } zone)
        {
            calls.Add((ChatTools.TimeNow, new() { ["time_zone"] = zone }));
        }

        if (Has(ChatTools.Calculate) && ExpressionIn(message) is { } expression)
        {
            calls.Add((ChatTools.Calculate, new() { ["expression"] = expression }));
        }

        if (Has(ChatTools.SearchHistory) && SearchRegex().Match(message) is { Success: true } search)
        {
            calls.Add((ChatTools.SearchHistory, new() { ["query"] = search.Groups["q"].Value.Trim(' ', '?', '.', '"') }));
        }

        return calls;
    }

    private static string? TimeZoneFor(string message)
    {
        if (!message.Contains("time", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        return OffsetRegex().Match(message) is { Success: true } offset ? offset.Value
            : IanaRegex().Match(message) is { Success: true } iana ? iana.Value
            : CityTimeZones.Find(message);
    }

    // Runs of numbers, operators and the calculator's own functions (its list, so the two never disagree).
    private static readonly Regex Arithmetic = new(
        $@"(?:\b(?:{string.Join('|', Calculator.Functions.Keys.OrderByDescending(f => f.Length))})\s*(?=\()|\bpi\b|(?<=\d)[eE](?=[-+]?\d)|[\d.()+\-−*/%^×÷]|[ \t](?=[ \t]*[\d.()+\-−*/%^×÷a-z]))+",
        RegexOptions.IgnoreCase);

    /// <summary>
    /// The first run of the message that reads as arithmetic: numbers with an operator or a function between or
    /// around them ("17*23", "sqrt(2)", "1e6 / 3"), not a lone number, a date or a percentage.
    /// </summary>
    private static string? ExpressionIn(string message)
    {
        foreach (Match run in Arithmetic.Matches(message))
        {
            // Operators at either end belong to no operand: "UTC+5" leaves "5", "50% of" leaves "50".
            var text = run.Value.Trim().TrimStart('+', '*', '/', '%', '^', '×', '÷', ')').TrimEnd('+', '-', '−', '*', '/', '%', '^', '×', '÷', '.', '(').Trim();
            if (text.Any(char.IsAsciiDigit) && (text.Any(c => c is '+' or '*' or '/' or '%' or '^' or '×' or '÷') || text.Skip(1).Contains('-') || char.IsLetter(text[0]))
                && !DateRegex().IsMatch(text))
            {
                return text;
            }
        }

        return null;
    }

    private static string LastUserMessage(ChatHistory history) => history.LastOrDefault(m => m.Role == AuthorRole.User)?.Content ?? "";

    /// <summary>The answer in parts: what the tools returned, the question, then sentences.</summary>
    private static IEnumerable<string> Answer(ChatHistory history, int longAnswerSentences)
    {
        var user = LastUserMessage(history);
        var results = history.SkipWhile(m => m != history.LastOrDefault(u => u.Role == AuthorRole.User))
            .SelectMany(m => m.Items.OfType<FunctionResultContent>()).ToList();
        var seed = Stable(user);
        var topic = string.Join(' ', user.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(8));
        if (results.Count > 0)
        {
            var text = new StringBuilder("Here is what the tools returned. ");
            foreach (var result in results)
            {
                text.Append(result.FunctionName).Append(": ").Append(result.Result).Append(". ");
            }

            yield return text.Append("\n\n").ToString();
        }

        yield return $"You asked: \"{topic}{(topic.Length < user.Length ? "…" : "")}\". ";
        var count = user.Contains("long", StringComparison.OrdinalIgnoreCase) || user.Contains("essay", StringComparison.OrdinalIgnoreCase) ? longAnswerSentences : 8;
        var atLineStart = false;
        for (var i = 0; i < count; i++)
        {
            var sentence = Sentences[(int)((seed + (uint)(i * 7)) % (uint)Sentences.Length)];
            // A fenced block is a block, as a model writes it: a fence opens only at the start of a line (CommonMark,
            // and the page's renderer), so one after prose on the same line would pair with the wrong closing fence.
            var block = sentence.StartsWith("```", StringComparison.Ordinal);
            var separator = block || i % 4 == 3 ? "\n\n" : " ";
            yield return (block && !atLineStart ? "\n\n" : "") + (i == count - 1 ? sentence : sentence + separator);
            atLineStart = separator[0] == '\n';
        }
    }

    /// <summary>An extractive summary: the opening of each message, so it is shorter and still says who said what.</summary>
    private static string Summarize(ChatHistory history)
    {
        var text = new StringBuilder("Summary of the earlier conversation: ");
        foreach (var message in history.Skip(1))
        {
            var content = message.Content ?? "";
            var firstSentence = content.Split(['.', '!', '?', '\n'], 2)[0];
            text.Append(message.Role.Label).Append(" said \"").Append(firstSentence.Shorten(80)).Append("\". ");
        }

        return text.ToString().TrimEnd();
    }

    /// <summary>Splits like a model streams: a word or two at a time, sometimes mid-word.</summary>
    private static IEnumerable<string> Deltas(IEnumerable<string> parts, uint seed)
    {
        var random = new Random((int)seed);
        foreach (var text in parts)
        {
            var start = 0;
            while (start < text.Length)
            {
                var length = Math.Min(text.Length - start, random.Next(1, 9));
                if (char.IsHighSurrogate(text[start + length - 1]) && start + length < text.Length)
                {
                    length++;
                }

                yield return text.Substring(start, length);
                start += length;
            }
        }
    }

    // FNV-1a: stable across processes, unlike string.GetHashCode.
    private static uint Stable(string text)
    {
        var hash = 2166136261u;
        foreach (var c in text)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return hash;
    }

    [GeneratedRegex(@"\b[A-Z][a-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?\b")]
    private static partial Regex IanaRegex();


    [GeneratedRegex(@"^\d{4}-\d{1,2}-\d{1,2}$")]
    private static partial Regex DateRegex();

    [GeneratedRegex(@"\b(?:UTC|GMT)\s*[+\-−]\s*\d{1,2}(?::?\d{2})?\b", RegexOptions.IgnoreCase)]
    private static partial Regex OffsetRegex();

    [GeneratedRegex(@"(?i)\b(?:search|did i (?:say|mention)|earlier)\b(?:\s+(?:the\s+)?(?:history|conversation)\s+)?(?:\s*(?:for|about))?\s*(?<q>[^.?!]*)")]
    private static partial Regex SearchRegex();
}
