using Microsoft.Extensions.Options;

namespace ChatStack.ChatApi.Agent;

/// <summary>The chat API's settings (section <c>Chat</c>).</summary>
internal sealed class ChatOptions
{
    public const string Section = "Chat";

    /// <summary>The model used when a request names none. The offline model needs no key.</summary>
    public string DefaultModel { get; set; } = OfflineChatCompletionService.ModelName;

    /// <summary>Models a request may name, by the name it uses.</summary>
    public Dictionary<string, ModelOptions> Models { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public string SystemPrompt { get; set; } =
        "You are ChatStack's assistant. Answer clearly and concisely. Use the tools when they help: the current time in a time zone, a calculator, and a search over this conversation.";

    /// <summary>Share of the model's context window past which older history is summarized before the model call.</summary>
    public double SummarizeShare { get; set; } = 0.75;

    /// <summary>
    /// Share of the message's <c>budget_max</c> past which older history is summarized, whichever trigger comes first.
    /// A conversation must leave its budget room to be summarized and answered: past the whole budget neither fits,
    /// and the turn could only be refused.
    /// </summary>
    public double SummarizeBudgetShare { get; set; } = 0.5;

    /// <summary>Newest messages kept verbatim when history is summarized.</summary>
    public int KeepRecentMessages { get; set; } = 4;

    /// <summary>Budget of a request that names none.</summary>
    public int DefaultBudget { get; set; } = 8_000;

    /// <summary>Smallest <c>budget_max</c> a request may ask for.</summary>
    public int MinBudget { get; set; } = 64;

    /// <summary>Largest <c>budget_max</c> a request may ask for: the per-request ceiling.</summary>
    public int MaxBudgetPerRequest { get; set; } = 32_000;

    public int MaxMessageChars { get; set; } = 16_000;

    public int MaxRequestBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// Largest answer kept, in bytes as stored: UTF-8, or with content capture on the JSON its chat event carries (up to
    /// 6 bytes a character). Firestore refuses a document over 1 MiB, so an answer stops here (<c>size_limit</c>) while
    /// it can still be saved, leaving room for the message's other fields and its outbox record's.
    /// </summary>
    public int MaxAnswerBytes { get; set; } = 1_000_000;

    /// <summary>Firestore's largest document less room for the fields beside the answer (names, ids, model, usage).</summary>
    public const int MaxStorableAnswerBytes = 1_048_576 - 16 * 1024;

    /// <summary>A <c>model_stream</c> token count is sent about every this many completion tokens.</summary>
    public int CheckpointTokens { get; set; } = 50;

    /// <summary>Model round trips allowed for tool calls in one answer.</summary>
    public int MaxToolRounds { get; set; } = 3;

    public double HeartbeatSeconds { get; set; } = 15;

    /// <summary>How long a finished stream can still be resumed with <c>Last-Event-ID</c>.</summary>
    public double ResumeWindowSeconds { get; set; } = 300;

    /// <summary>
    /// How long a run goes on after its last reader's connection ended, so a client that lost its connection resumes
    /// the answer in progress; past it the model call is cancelled. Longer than SSE's <c>retry: 2000</c> and the
    /// page's reconnects; a client that means to stop cancels the stream instead.
    /// </summary>
    public double ReconnectGraceSeconds { get; set; } = 10;

    /// <summary>
    /// How long a turn's hold on its session lasts unless its run renews it (every third of it): what keeps a second
    /// message to the session, on any instance, from running until the turn ends, and how long a session stays
    /// answering after the instance running its turn died.
    /// </summary>
    public double TurnLeaseSeconds { get; set; } = 60;

    /// <summary>
    /// Whether a session's one-turn-at-a-time rule holds across instances (a hold in Firestore: one more write in the
    /// turn's first commit and one in its last). Off, it holds within each instance only, which is enough where one
    /// instance serves (a laptop, <c>maxScale: 1</c>) and saves those writes.
    /// </summary>
    public bool SharedTurns { get; set; } = true;

    public TimeSpan TurnLease => TimeSpan.FromSeconds(TurnLeaseSeconds);

    public OfflineModelOptions Offline { get; set; } = new();

    /// <summary>Most characters of a message: its document, as a chat event's JSON (up to 6 bytes a character), fits Firestore's 1 MiB.</summary>
    public const int MaxStorableMessageChars = MaxStorableAnswerBytes / 6;

    /// <summary>Most bytes of a request body read into memory, whatever is configured.</summary>
    public const int MaxReadableRequestBytes = 16 * 1024 * 1024;

    /// <summary>What is wrong with these settings, for start-up to refuse them rather than the first request to fail.</summary>
    public IEnumerable<string> Problems()
    {
        if (MaxAnswerBytes is < 1 or > MaxStorableAnswerBytes)
        {
            yield return $"{Section}:MaxAnswerBytes is {MaxAnswerBytes}; it must lie in 1..{MaxStorableAnswerBytes} " +
                "(a Firestore document holds at most 1 MiB, and the answer's document holds more than its text)";
        }

        if (MaxMessageChars is < 1 or > MaxStorableMessageChars)
        {
            yield return $"{Section}:MaxMessageChars is {MaxMessageChars}; it must lie in 1..{MaxStorableMessageChars} " +
                "(a message is saved as one Firestore document, at up to 6 bytes a character in its chat event)";
        }

        if (MaxRequestBytes is < 1024 or > MaxReadableRequestBytes)
        {
            yield return $"{Section}:MaxRequestBytes is {MaxRequestBytes}; it must lie in 1024..{MaxReadableRequestBytes} " +
                "(a request body is read whole into memory before it is parsed)";
        }

        if (MinBudget < 1 || MaxBudgetPerRequest < MinBudget)
        {
            yield return $"{Section}:MinBudget and {Section}:MaxBudgetPerRequest are {MinBudget} and {MaxBudgetPerRequest}; " +
                "the least budget must be at least 1 and the ceiling at least the least budget";
        }
        else if (DefaultBudget < MinBudget || DefaultBudget > MaxBudgetPerRequest)
        {
            yield return $"{Section}:DefaultBudget is {DefaultBudget}; it must lie in {Section}:MinBudget..{Section}:MaxBudgetPerRequest " +
                $"({MinBudget}..{MaxBudgetPerRequest}), or every request that names no budget is refused";
        }

        if (!(SummarizeShare is > 0 and <= 1))
        {
            yield return $"{Section}:SummarizeShare is {SummarizeShare}; it must lie in (0, 1]: the share of the context window past which history is summarized";
        }

        if (!(SummarizeBudgetShare is > 0 and <= 1))
        {
            yield return $"{Section}:SummarizeBudgetShare is {SummarizeBudgetShare}; it must lie in (0, 1]: the share of a message's budget past which history is summarized";
        }

        if (KeepRecentMessages < 0)
        {
            yield return $"{Section}:KeepRecentMessages is {KeepRecentMessages}; it must be 0 or more";
        }

        if (CheckpointTokens < 1)
        {
            yield return $"{Section}:CheckpointTokens is {CheckpointTokens}; it must be 1 or more (tokens between model_stream counts)";
        }

        if (MaxToolRounds is < 0 or > 32)
        {
            yield return $"{Section}:MaxToolRounds is {MaxToolRounds}; it must lie in 0..32 (0: tools are never offered)";
        }

        if (!(HeartbeatSeconds is > 0 and <= 3600))
        {
            yield return $"{Section}:HeartbeatSeconds is {HeartbeatSeconds}; it must lie in (0, 3600]";
        }

        foreach (var (name, seconds) in new[] { ("ResumeWindowSeconds", ResumeWindowSeconds), ("ReconnectGraceSeconds", ReconnectGraceSeconds) })
        {
            if (!(seconds is >= 0 and <= 86_400))
            {
                yield return $"{Section}:{name} is {seconds}; it must lie in 0..86400";
            }
        }

        if (!(TurnLeaseSeconds is >= 3 and <= 3600))
        {
            yield return $"{Section}:TurnLeaseSeconds is {TurnLeaseSeconds}; it must lie in 3..3600 (a run renews it every third)";
        }

        if (Offline.DeltaDelayMs < 0)
        {
            yield return $"{Section}:Offline:DeltaDelayMs is {Offline.DeltaDelayMs}; it must be 0 or more";
        }
    }
}

/// <summary>Refuses <see cref="ChatOptions"/> that <see cref="ChatOptions.Problems"/> finds wrong, at start-up.</summary>
internal sealed class ChatOptionsValidation : IValidateOptions<ChatOptions>
{
    public ValidateOptionsResult Validate(string? name, ChatOptions options) =>
        options.Problems().ToList() is { Count: > 0 } problems
            ? ValidateOptionsResult.Fail(problems)
            : ValidateOptionsResult.Success;
}

internal enum ModelProvider
{
    Offline,
    OpenAI,
}

/// <summary>One model a request may name.</summary>
internal sealed class ModelOptions
{
    public ModelProvider Provider { get; set; } = ModelProvider.OpenAI;

    /// <summary>An OpenAI-compatible base URL (OpenAI, Azure OpenAI's /openai/v1/, Ollama's /v1, vLLM). Null = api.openai.com.</summary>
    public Uri? Endpoint { get; set; }

    public string? ApiKey { get; set; }

    /// <summary>The provider's own model id, when it differs from the name requests use.</summary>
    public string? ProviderModelId { get; set; }

    /// <summary><c>o200k_base</c> or <c>cl100k_base</c>; null = implied by the model name.</summary>
    public string? Encoding { get; set; }

    public int ContextWindow { get; set; } = 128_000;

    /// <summary>Most output tokens asked for in one model call (the remaining budget lowers it further).</summary>
    public int MaxOutputTokens { get; set; } = 4_096;
}

internal sealed class OfflineModelOptions
{
    /// <summary>Pause between streamed deltas, so the offline model streams at a human-visible pace.</summary>
    public int DeltaDelayMs { get; set; } = 8;

    /// <summary>Sentences in the answer to a message asking for something long (an essay): ~25 tokens each; load tests raise it.</summary>
    public int LongAnswerSentences { get; set; } = 40;
}
